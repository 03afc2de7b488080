package fhirvalidate

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A small, strict XML tokenizer for narrative divs. encoding/xml would do, but it costs
// several times more than the rest of the walk together; narratives need only a subset
// of XML (no DTD, no entities beyond the five predefined ones), which is checked here in
// one pass over the string with few allocations.

// xname is a namespace-resolved name, as in encoding/xml: space holds the namespace URI
// for elements and prefixed attributes ("xmlns" for namespace declarations).
type xname struct {
	space, local string
}

type xattr struct {
	name  xname
	value string
}

type xtokKind uint8

const (
	xEOF xtokKind = iota
	xStart
	xEnd
	xText
	xComment
	xProcInst
	xDirective
)

type xtoken struct {
	kind    xtokKind
	name    xname   // xStart
	attrs   []xattr // xStart; valid until the next call
	self    bool    // xStart: an empty-element tag (<br/>)
	content bool    // xText: holds non-whitespace content
	target  string  // xProcInst
}

// Limits that keep hostile markup linear to check; real narratives stay far below them.
const (
	maxXAttrs    = 64 // attributes on one element
	maxXBindings = 32 // namespace prefixes declared in scope
)

type nsBinding struct {
	prefix, uri string
}

type openElem struct {
	qname    string
	defNS    string // default namespace in effect inside the element
	bindings int    // len(ns) before the element's declarations
}

// xtokenizer reads tokens from s. A well-formedness error is returned as an error whose
// text quotes no content beyond element and attribute names.
type xtokenizer struct {
	s       string
	pos     int
	stack   []openElem
	ns      []nsBinding
	attrs   []xattr
	pending bool // an empty-element tag's end is due
}

func (x *xtokenizer) errf(format string, args ...any) error {
	return fmt.Errorf("at character %d: %s", x.pos, fmt.Sprintf(format, args...))
}

func (x *xtokenizer) defNS() string {
	if n := len(x.stack); n > 0 {
		return x.stack[n-1].defNS
	}
	return ""
}

func (x *xtokenizer) lookup(prefix string) (string, bool) {
	if prefix == "xml" {
		return xmlNS, true
	}
	for i := len(x.ns) - 1; i >= 0; i-- {
		if x.ns[i].prefix == prefix {
			return x.ns[i].uri, true
		}
	}
	return "", false
}

// next returns the next token.
func (x *xtokenizer) next() (xtoken, error) {
	if x.pending {
		x.pending = false
		return x.pop("")
	}
	if x.pos >= len(x.s) {
		if len(x.stack) > 0 {
			return xtoken{}, x.errf("element <%s> is not closed", x.stack[len(x.stack)-1].qname)
		}
		return xtoken{kind: xEOF}, nil
	}
	if x.s[x.pos] != '<' {
		return x.text()
	}
	rest := x.s[x.pos:]
	switch {
	case strings.HasPrefix(rest, "<!--"):
		end := strings.Index(rest[4:], "--")
		if end < 0 || !strings.HasPrefix(rest[4+end:], "-->") {
			return xtoken{}, x.errf("unterminated or invalid comment")
		}
		if err := x.checkChars(rest[4 : 4+end]); err != nil {
			return xtoken{}, err
		}
		x.pos += 4 + end + 3
		return xtoken{kind: xComment}, nil
	case strings.HasPrefix(rest, "<![CDATA["):
		if len(x.stack) == 0 {
			return xtoken{}, x.errf("CDATA section outside the root element")
		}
		end := strings.Index(rest, "]]>")
		if end < 0 {
			return xtoken{}, x.errf("unterminated CDATA section")
		}
		body := rest[9:end]
		if err := x.checkChars(body); err != nil {
			return xtoken{}, err
		}
		x.pos += end + 3
		return xtoken{kind: xText, content: strings.TrimLeft(body, " \t\r\n") != ""}, nil
	case strings.HasPrefix(rest, "<!"):
		// A DOCTYPE or other declaration: skip it, brackets included, and report it.
		depth := 0
		for i := 2; i < len(rest); i++ {
			switch rest[i] {
			case '[':
				depth++
			case ']':
				depth--
			case '>':
				if depth <= 0 {
					x.pos += i + 1
					return xtoken{kind: xDirective}, nil
				}
			}
		}
		return xtoken{}, x.errf("unterminated declaration")
	case strings.HasPrefix(rest, "<?"):
		x.pos += 2
		target, ok := x.name()
		if !ok {
			return xtoken{}, x.errf("processing instruction without a valid target")
		}
		end := strings.Index(x.s[x.pos:], "?>")
		if end < 0 {
			return xtoken{}, x.errf("unterminated processing instruction")
		}
		body := x.s[x.pos : x.pos+end]
		if body != "" && !strings.ContainsAny(body[:1], " \t\r\n") {
			return xtoken{}, x.errf("invalid processing instruction")
		}
		if err := x.checkChars(body); err != nil {
			return xtoken{}, err
		}
		x.pos += end + 2
		return xtoken{kind: xProcInst, target: target}, nil
	case strings.HasPrefix(rest, "</"):
		x.pos += 2
		name, ok := x.name()
		if !ok {
			return xtoken{}, x.errf("invalid end tag")
		}
		x.skipSpace()
		if x.pos >= len(x.s) || x.s[x.pos] != '>' {
			return xtoken{}, x.errf("invalid end tag </%s>", name)
		}
		x.pos++
		return x.pop(name)
	}
	return x.start()
}

// pop closes the innermost element; name is the end tag's name ("" for an empty-element tag).
func (x *xtokenizer) pop(name string) (xtoken, error) {
	n := len(x.stack)
	if n == 0 {
		return xtoken{}, x.errf("unexpected end tag </%s>", name)
	}
	top := x.stack[n-1]
	if name != "" && name != top.qname {
		return xtoken{}, x.errf("element <%s> closed by </%s>", top.qname, name)
	}
	x.stack = x.stack[:n-1]
	x.ns = x.ns[:top.bindings]
	return xtoken{kind: xEnd}, nil
}

// start reads a start tag.
func (x *xtokenizer) start() (xtoken, error) {
	x.pos++ // '<'
	qname, ok := x.name()
	if !ok {
		return xtoken{}, x.errf("invalid element name")
	}
	x.attrs = x.attrs[:0]
	type rawAttr struct{ qname, value string }
	var raw [16]rawAttr
	attrs := raw[:0]
	self := false
	for {
		hadSpace := x.skipSpace()
		if x.pos >= len(x.s) {
			return xtoken{}, x.errf("unterminated start tag <%s>", qname)
		}
		if c := x.s[x.pos]; c == '>' {
			x.pos++
			break
		} else if c == '/' {
			if !strings.HasPrefix(x.s[x.pos:], "/>") {
				return xtoken{}, x.errf("invalid start tag <%s>", qname)
			}
			x.pos += 2
			self = true
			break
		}
		if !hadSpace {
			return xtoken{}, x.errf("missing space before an attribute of <%s>", qname)
		}
		an, ok := x.name()
		if !ok {
			return xtoken{}, x.errf("invalid attribute name in <%s>", qname)
		}
		x.skipSpace()
		if x.pos >= len(x.s) || x.s[x.pos] != '=' {
			return xtoken{}, x.errf("attribute %s of <%s> has no value", an, qname)
		}
		x.pos++
		x.skipSpace()
		val, err := x.attrValue()
		if err != nil {
			return xtoken{}, err
		}
		if len(attrs) >= maxXAttrs {
			return xtoken{}, x.errf("more than %d attributes in <%s>", maxXAttrs, qname)
		}
		for _, a := range attrs {
			if a.qname == an {
				return xtoken{}, x.errf("duplicate attribute %s in <%s>", an, qname)
			}
		}
		attrs = append(attrs, rawAttr{an, val})
	}

	// Namespace declarations first: they apply to the element's own name and attributes.
	e := openElem{qname: qname, defNS: x.defNS(), bindings: len(x.ns)}
	for _, a := range attrs {
		switch {
		case a.qname == "xmlns":
			e.defNS = a.value
		case strings.HasPrefix(a.qname, "xmlns:"):
			if len(x.ns) >= maxXBindings {
				return xtoken{}, x.errf("more than %d namespace declarations in scope", maxXBindings)
			}
			x.ns = append(x.ns, nsBinding{prefix: a.qname[len("xmlns:"):], uri: a.value})
		}
	}
	x.stack = append(x.stack, e)
	tok := xtoken{kind: xStart, self: self}
	if prefix, local, ok := strings.Cut(qname, ":"); ok {
		uri, bound := x.lookup(prefix)
		if !bound {
			return xtoken{}, x.errf("unbound namespace prefix %s", prefix)
		}
		tok.name = xname{uri, local}
	} else {
		tok.name = xname{e.defNS, qname}
	}
	for _, a := range attrs {
		var n xname
		switch prefix, local, ok := strings.Cut(a.qname, ":"); {
		case !ok:
			n = xname{"", a.qname}
		case prefix == "xmlns":
			n = xname{"xmlns", local}
		default:
			uri, bound := x.lookup(prefix)
			if !bound {
				return xtoken{}, x.errf("unbound namespace prefix %s", prefix)
			}
			n = xname{uri, local}
		}
		x.attrs = append(x.attrs, xattr{name: n, value: a.value})
	}
	tok.attrs = x.attrs
	x.pending = self
	return tok, nil
}

// attrValue reads a quoted attribute value and decodes its references.
func (x *xtokenizer) attrValue() (string, error) {
	if x.pos >= len(x.s) || (x.s[x.pos] != '"' && x.s[x.pos] != '\'') {
		return "", x.errf("attribute value not quoted")
	}
	q := x.s[x.pos]
	end := strings.IndexByte(x.s[x.pos+1:], q)
	if end < 0 {
		return "", x.errf("unterminated attribute value")
	}
	raw := x.s[x.pos+1 : x.pos+1+end]
	if strings.IndexByte(raw, '<') >= 0 {
		return "", x.errf("'<' in an attribute value")
	}
	if err := x.checkChars(raw); err != nil {
		return "", err
	}
	x.pos += end + 2
	if strings.IndexByte(raw, '&') < 0 {
		return raw, nil
	}
	var b strings.Builder
	for i := 0; i < len(raw); {
		if raw[i] != '&' {
			b.WriteByte(raw[i])
			i++
			continue
		}
		r, n, err := x.reference(raw[i:])
		if err != nil {
			return "", err
		}
		b.WriteRune(r)
		i += n
	}
	return b.String(), nil
}

// text reads character data up to the next '<'.
func (x *xtokenizer) text() (xtoken, error) {
	end := strings.IndexByte(x.s[x.pos:], '<')
	if end < 0 {
		end = len(x.s) - x.pos
	}
	raw := x.s[x.pos : x.pos+end]
	if err := x.checkChars(raw); err != nil {
		return xtoken{}, err
	}
	content := false
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case ' ', '\t', '\r', '\n':
			i++
		case '&':
			_, n, err := x.reference(raw[i:])
			if err != nil {
				return xtoken{}, err
			}
			content = true
			i += n
		default:
			content = true
			i++
		}
	}
	if strings.Contains(raw, "]]>") {
		return xtoken{}, x.errf("']]>' in text")
	}
	x.pos += end
	return xtoken{kind: xText, content: content}, nil
}

// reference decodes the character or entity reference at the start of s ("&...;").
func (x *xtokenizer) reference(s string) (rune, int, error) {
	end := strings.IndexByte(s, ';')
	if end < 2 || end > 12 {
		return 0, 0, x.errf("invalid character or entity reference")
	}
	ref := s[1:end]
	switch ref {
	case "lt":
		return '<', end + 1, nil
	case "gt":
		return '>', end + 1, nil
	case "amp":
		return '&', end + 1, nil
	case "quot":
		return '"', end + 1, nil
	case "apos":
		return '\'', end + 1, nil
	}
	if ref[0] != '#' {
		return 0, 0, x.errf("undefined entity &%s; (only the five XML entities are allowed)", ref)
	}
	var n uint64
	var err error
	if len(ref) > 1 && ref[1] == 'x' {
		n, err = strconv.ParseUint(ref[2:], 16, 32)
	} else {
		n, err = strconv.ParseUint(ref[1:], 10, 32)
	}
	if err != nil || !isXMLChar(rune(n)) {
		return 0, 0, x.errf("invalid character reference")
	}
	return rune(n), end + 1, nil
}

// checkChars rejects characters XML does not allow (most C0 controls).
func (x *xtokenizer) checkChars(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return x.errf("control character in XHTML")
		}
	}
	return nil
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// name reads an XML name. Only ASCII names are accepted: XHTML needs no others.
func (x *xtokenizer) name() (string, bool) {
	start := x.pos
	for x.pos < len(x.s) {
		c := x.s[x.pos]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
			(x.pos > start && ((c >= '0' && c <= '9') || c == '-' || c == '.')) {
			x.pos++
			continue
		}
		break
	}
	if x.pos == start {
		return "", false
	}
	if x.pos < len(x.s) && x.s[x.pos] >= utf8.RuneSelf {
		return "", false
	}
	return x.s[start:x.pos], true
}

// skipSpace skips XML whitespace and reports whether there was any.
func (x *xtokenizer) skipSpace() bool {
	start := x.pos
	for x.pos < len(x.s) {
		switch x.s[x.pos] {
		case ' ', '\t', '\r', '\n':
			x.pos++
		default:
			return x.pos > start
		}
	}
	return x.pos > start
}
