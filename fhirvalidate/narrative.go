package fhirvalidate

import (
	"fmt"
	"strings"
)

const (
	xhtmlNS = "http://www.w3.org/1999/xhtml"
	xmlNS   = "http://www.w3.org/XML/1998/namespace"
)

// allowedElements are the XHTML elements FHIR R4's txt-1 allows in a narrative.
var allowedElements = setOf("a", "abbr", "acronym", "b", "big", "blockquote", "br", "caption",
	"cite", "code", "col", "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3",
	"h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "q", "samp", "small", "span",
	"strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "ul", "var")

// allowedAttributes are the attributes txt-1 allows.
var allowedAttributes = setOf("abbr", "accesskey", "align", "alt", "axis", "bgcolor", "border",
	"cellhalign", "cellpadding", "cellspacing", "cellvalign", "char", "charoff", "charset", "cite",
	"class", "colspan", "compact", "coords", "dir", "frame", "headers", "height", "href", "hreflang",
	"hspace", "id", "lang", "longdesc", "name", "nowrap", "rel", "rev", "rowspan", "rules", "scope",
	"shape", "span", "src", "start", "style", "summary", "tabindex", "title", "type", "valign",
	"value", "vspace", "width")

// activeElements run code, load other documents or submit data: the narrative definition
// forbids them ("scripts, forms, base/link/xlink, frames, iframes and objects") and they
// are reported as security issues rather than as mere formatting violations.
var activeElements = setOf("script", "iframe", "frame", "frameset", "object", "embed", "applet",
	"form", "input", "button", "select", "textarea", "option", "base", "link", "meta", "style",
	"head", "body", "html", "svg", "math", "template", "noscript", "portal", "audio", "video", "source", "track")

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// maxNarrativeProblems bounds the problems reported for one div (and the cost of keeping
// them distinct).
const maxNarrativeProblems = 10

// narrativeProblem is one finding in a narrative div.
type narrativeProblem struct {
	severity, code, diag string
}

// checkNarrative checks a Narrative.div value and records issues at path.
func (w *walker) checkNarrative(div, path string) {
	for _, p := range narrativeProblems(div) {
		w.issueAt(p.severity, p.code, p.diag, path)
	}
}

// narrativeProblems checks that div is a well-formed XHTML <div> in the XHTML namespace
// without active content (txt-1) and with some content (txt-2). Each distinct problem is
// reported once.
func narrativeProblems(div string) []narrativeProblem {
	var probs []narrativeProblem
	add := func(code, diag string) {
		if len(probs) >= maxNarrativeProblems {
			return
		}
		for _, p := range probs {
			if p.diag == diag {
				return
			}
		}
		probs = append(probs, narrativeProblem{SeverityError, code, diag})
	}
	x := xtokenizer{s: div}
	depth, roots := 0, 0
	content := false
	for {
		tok, err := x.next()
		if err != nil {
			add(CodeStructure, "the narrative div is not well-formed XHTML: "+err.Error())
			return probs
		}
		if tok.kind == xEOF {
			break
		}
		switch tok.kind {
		case xStart:
			if depth == 0 {
				roots++
				if tok.name.local != "div" {
					add(CodeInvariant, "the narrative must be a single XHTML <div> element")
				}
			}
			depth++
			checkElement(tok, depth == 1, add)
			if strings.EqualFold(tok.name.local, "img") && hasAttr(tok, "src") {
				content = true
			}
		case xEnd:
			depth--
		case xText:
			if depth == 0 {
				if tok.content {
					add(CodeInvariant, "the narrative must be a single XHTML <div> element")
				}
			} else if tok.content {
				content = true
			}
		case xDirective:
			add(CodeSecurity, "the narrative must not contain a DOCTYPE or other XML directive")
		case xProcInst:
			if strings.EqualFold(tok.target, "xml") {
				add(CodeInvariant, "the narrative must be a single XHTML <div> element, without an XML declaration")
			} else {
				add(CodeSecurity, "the narrative must not contain XML processing instructions")
			}
		}
	}
	if roots == 0 {
		add(CodeInvariant, "the narrative must be a single XHTML <div> element")
		return probs
	}
	if roots > 1 {
		add(CodeInvariant, "the narrative must be a single XHTML <div> element")
	}
	if !content {
		// R4 makes txt-2 an error, yet the specification's own examples (e.g.
		// ActivityDefinition-blood-tubes-supply) carry empty narratives and every validator
		// in use accepts them; an empty div is harmless, so it is a warning here.
		probs = append(probs, narrativeProblem{SeverityWarning, CodeInvariant, "txt-2: the narrative SHALL have some non-whitespace content"})
	}
	return probs
}

// checkElement checks one start tag; names carry their resolved namespace.
func checkElement(t xtoken, root bool, add func(code, diag string)) {
	name := strings.ToLower(t.name.local)
	// The attributes of an element already rejected are only checked for active content.
	rejected := true
	switch {
	case activeElements[name]:
		add(CodeSecurity, fmt.Sprintf("txt-1: the narrative must not contain active content (<%s> element)", name))
	case !allowedElements[t.name.local]:
		add(CodeInvariant, fmt.Sprintf("txt-1: element <%s> is not allowed in a narrative", t.name.local))
	default:
		rejected = false
	}
	for _, a := range t.attrs {
		local := strings.ToLower(a.name.local)
		switch {
		case a.name.space == "" && a.name.local == "xmlns", a.name.space == "xmlns":
			// A namespace declaration; elements in a foreign namespace are reported below.
			continue
		case a.name.space == xmlNS && (local == "lang" || local == "space"):
			continue
		case strings.HasPrefix(local, "on"):
			add(CodeSecurity, fmt.Sprintf("txt-1: the narrative must not contain active content (event handler attribute %s)", a.name.local))
			continue
		case a.name.space != "":
			add(CodeSecurity, fmt.Sprintf("txt-1: attribute %s:%s is not allowed in a narrative", a.name.space, a.name.local))
			continue
		case !allowedAttributes[a.name.local] && !rejected:
			add(CodeInvariant, fmt.Sprintf("txt-1: attribute %s is not allowed in a narrative", a.name.local))
			continue
		}
		if activeURL(a.value) {
			add(CodeSecurity, fmt.Sprintf("txt-1: the narrative must not contain active content (script URL in attribute %s)", a.name.local))
		}
		if local == "style" && activeStyle(a.value) {
			add(CodeSecurity, "txt-1: the narrative must not contain active content (script in a style attribute)")
		}
	}
	switch {
	case t.name.space == xhtmlNS:
	case root:
		add(CodeInvariant, fmt.Sprintf(`the narrative div must be in the XHTML namespace (xmlns=%q)`, xhtmlNS))
	default:
		add(CodeInvariant, fmt.Sprintf("txt-1: element <%s> is not in the XHTML namespace", t.name.local))
	}
}

func hasAttr(t xtoken, name string) bool {
	for _, a := range t.attrs {
		if a.name.space == "" && strings.EqualFold(a.name.local, name) && strings.TrimSpace(a.value) != "" {
			return true
		}
	}
	return false
}

// squeeze lowercases s and drops whitespace and control characters, which browsers ignore
// inside URL schemes ("java\tscript:").
func squeeze(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			continue
		}
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// activeURL reports whether an attribute value is a URL that runs code when followed or
// loaded: javascript:, vbscript: and livescript: URLs, and data: URLs other than raster
// images.
func activeURL(v string) bool {
	s := squeeze(v)
	switch {
	case strings.HasPrefix(s, "javascript:"), strings.HasPrefix(s, "vbscript:"), strings.HasPrefix(s, "livescript:"):
		return true
	case strings.HasPrefix(s, "data:"):
		return !strings.HasPrefix(s, "data:image/") || strings.HasPrefix(s, "data:image/svg")
	}
	return false
}

// activeStyle reports whether a style attribute can run code (old IE expressions and
// behaviours, script URLs).
func activeStyle(v string) bool {
	s := squeeze(v)
	for _, bad := range []string{"javascript:", "vbscript:", "expression(", "behavior:", "-moz-binding", "@import"} {
		if strings.Contains(s, bad) {
			return true
		}
	}
	return false
}
