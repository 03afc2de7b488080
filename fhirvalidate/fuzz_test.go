package fhirvalidate

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// seedExamples adds the vendored spec examples to a fuzz corpus.
func seedExamples(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "examples", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{obs, withObs(`"foo":1`), `{"resourceType":"Patient","name":[{"given":["",null]}]}`,
		bundle("transaction", `{"resource":`+patient+`}`), "[1]", `{"a":"\ud800\u00e9\n"}`} {
		f.Add([]byte(s))
	}
}

var severities = []string{SeverityFatal, SeverityError, SeverityWarning, SeverityInformation}

// FuzzValidate: any input yields issues, never an error or a panic, and every issue is a
// well-formed OperationOutcome issue.
func FuzzValidate(f *testing.F) {
	seedExamples(f)
	v := New(Options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		_, issues, err := v.Validate(body)
		if err != nil {
			t.Fatalf("Validate returned an error: %v", err)
		}
		for _, is := range issues {
			if !slices.Contains(severities, is.Severity) || is.Code == "" || is.Diagnostics == "" {
				t.Fatalf("malformed issue %+v", is)
			}
		}
	})
}

// FuzzWalkSyntax: the walk accepts exactly the JSON that encoding/json accepts (restricted
// to valid UTF-8 objects within the depth limit), and decodes strings as encoding/json does.
func FuzzWalkSyntax(f *testing.F) {
	seedExamples(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := newWalker(body, DefaultMaxNestingDepth)
		w.run()
		syntaxOK := true
		for _, is := range w.issues {
			if is.Severity == SeverityFatal && is.Code == CodeStructure {
				syntaxOK = false
			}
		}
		valid := json.Valid(body)
		if syntaxOK && !valid {
			t.Fatalf("walk accepted invalid JSON")
		}
		trimmed := strings.TrimLeft(string(body), " \t\r\n")
		if valid && utf8.Valid(body) && strings.HasPrefix(trimmed, "{") && !syntaxOK && jsonDepth(body) <= DefaultMaxNestingDepth {
			t.Fatalf("walk rejected valid JSON: %+v", w.issues)
		}
	})
}

// jsonDepth returns the nesting depth of valid JSON.
func jsonDepth(b []byte) int {
	d := json.NewDecoder(strings.NewReader(string(b)))
	depth, max := 0, 0
	for {
		tok, err := d.Token()
		if err != nil {
			return max
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			max = maxInt(max, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// FuzzUnescape: unescapeJSON decodes every string scanString accepts as encoding/json does.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`plain`, `a\"b\\c\/d\b\f\n\r\t`, `\u00e9\u20AC`, `\ud83d\ude00`, `\ud800x`, `\udc00\ud800`, `é€`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		quoted := []byte(`"` + raw + `"`)
		w := &walker{data: quoted}
		start, end, esc, ok := w.scanString()
		if !ok || w.pos != len(quoted) {
			return
		}
		var want string
		if err := json.Unmarshal(quoted, &want); err != nil {
			t.Fatalf("scanString accepted %q, encoding/json rejects it: %v", quoted, err)
		}
		if got := string(w.unescape(start, end, esc)); got != want {
			t.Fatalf("unescape(%q) = %q, want %q", quoted, got, want)
		}
	})
}

// FuzzXHTML: the narrative tokenizer never accepts markup that encoding/xml (strict, no
// entities) finds not well-formed.
func FuzzXHTML(f *testing.F) {
	for _, s := range []string{
		`<div xmlns="http://www.w3.org/1999/xhtml"><p>x &amp; y</p><br/></div>`,
		`<div xmlns="http://www.w3.org/1999/xhtml"><![CDATA[a<b]]><!-- c --><a href='x'>y</a></div>`,
		`<?xml version="1.0"?><div xmlns="http://www.w3.org/1999/xhtml" xmlns:x="urn:x"><x:p x:a="1">&#x41;</x:p></div>`,
		`<div><p>x</div>`, `<div a="1" a="2"/>`, `<!DOCTYPE d [<!ENTITY e "x">]><div>&e;</div>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, div string) {
		if !utf8.ValidString(div) {
			return // narratives come from JSON strings, which are valid UTF-8
		}
		x := xtokenizer{s: div}
		for {
			tok, err := x.next()
			if err != nil {
				return // rejected: nothing to compare
			}
			if tok.kind == xEOF {
				break
			}
			if tok.kind == xDirective || tok.kind == xProcInst {
				return // reported as an issue; encoding/xml may parse it differently
			}
		}
		d := xml.NewDecoder(strings.NewReader(div))
		d.Strict = true
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("tokenizer accepted %q; encoding/xml: %v", div, err)
			}
		}
	})
}
