package fhirvalidate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const xns = `xmlns="http://www.w3.org/1999/xhtml"`

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ` a%d="1"`, i)
	}
	return b.String()
}

func manyElements(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `<e%d/>`, i)
	}
	return b.String()
}

func TestNarrativeProblems(t *testing.T) {
	tests := []struct {
		name string
		div  string
		want []string // codes, in order; "warning" marks the txt-2 warning
	}{
		{name: "plain", div: `<div ` + xns + `>Hello</div>`},
		{name: "table and entities", div: `<div ` + xns + `><table border="1"><tr><td>a &lt; b &amp;&#160;&#x41;</td></tr></table></div>`},
		{name: "single quotes and spaces", div: `<div ` + xns + ` ><p class = 'x' >y</p ></div >`},
		{name: "comment and CDATA", div: `<div ` + xns + `><!-- note --><![CDATA[a < b]]></div>`},
		{name: "CDATA is content", div: `<div ` + xns + `><![CDATA[x]]></div>`},
		{name: "character reference is content", div: `<div ` + xns + `>&#65;</div>`},
		{name: "prefixed XHTML elements", div: `<h:div xmlns:h="http://www.w3.org/1999/xhtml"><h:p>x</h:p></h:div>`},
		{name: "xml:lang", div: `<div ` + xns + ` xml:lang="en"><p lang="en">x</p></div>`},
		{name: "whitespace around the root", div: "\n <div " + xns + ">x</div>\n"},
		{name: "img with src is content", div: `<div ` + xns + `><img src="a.png" alt=""/></div>`},
		{name: "img without src is not", div: `<div ` + xns + `><img alt="x"/></div>`, want: []string{"warning"}},
		{name: "empty", div: `<div ` + xns + `/>`, want: []string{"warning"}},
		{name: "comment only", div: `<div ` + xns + `><!-- x --></div>`, want: []string{"warning"}},
		{name: "foreign element", div: `<div ` + xns + ` xmlns:s="http://www.w3.org/2000/svg"><s:svg>x</s:svg></div>`, want: []string{CodeSecurity, CodeInvariant}},
		{name: "element outside XHTML namespace", div: `<div ` + xns + `><p xmlns="urn:other">x</p></div>`, want: []string{CodeInvariant}},
		{name: "unbound prefix", div: `<div ` + xns + `><x:p>y</x:p></div>`, want: []string{CodeStructure}},
		{name: "duplicate attribute", div: `<div ` + xns + `><p class="a" class="b">y</p></div>`, want: []string{CodeStructure}},
		{name: "mismatched tags", div: `<div ` + xns + `><b><i>x</b></i></div>`, want: []string{CodeStructure}},
		{name: "unclosed root", div: `<div ` + xns + `>x`, want: []string{CodeStructure}},
		{name: "stray end tag", div: `<div ` + xns + `>x</div></p>`, want: []string{CodeStructure}},
		{name: "unquoted attribute", div: `<div ` + xns + `><p class=a>x</p></div>`, want: []string{CodeStructure}},
		{name: "attribute without value", div: `<div ` + xns + `><td nowrap>x</td></div>`, want: []string{CodeStructure}},
		{name: "lt in attribute", div: `<div ` + xns + `><p title="a<b">x</p></div>`, want: []string{CodeStructure}},
		{name: "bare ampersand", div: `<div ` + xns + `>a & b</div>`, want: []string{CodeStructure}},
		{name: "invalid character reference", div: `<div ` + xns + `>&#0;</div>`, want: []string{CodeStructure}},
		{name: "control character", div: "<div " + xns + ">a\x01b</div>", want: []string{CodeStructure}},
		{name: "bad comment", div: `<div ` + xns + `><!-- a -- b --></div>`, want: []string{CodeStructure}},
		{name: "two roots", div: `<div ` + xns + `>a</div><div ` + xns + `>b</div>`, want: []string{CodeInvariant}},
		{name: "text after root", div: `<div ` + xns + `>a</div>b`, want: []string{CodeInvariant}},
		{name: "xml declaration", div: `<?xml version="1.0"?><div ` + xns + `>a</div>`, want: []string{CodeInvariant}},
		{name: "processing instruction", div: `<div ` + xns + `><?php echo 1 ?>a</div>`, want: []string{CodeSecurity}},
		{name: "uppercase SCRIPT", div: `<div ` + xns + `>a<SCRIPT>x</SCRIPT></div>`, want: []string{CodeSecurity}},
		{name: "entity-encoded javascript URL", div: `<div ` + xns + `><a href="&#106;avascript:x">a</a></div>`, want: []string{CodeSecurity}},
		{name: "mailto and https URLs", div: `<div ` + xns + `><a href="mailto:a@b.example">a</a><a href="https://x.example/?a=1&amp;b=2">b</a></div>`},
		{name: "raster data URL", div: `<div ` + xns + `><img src="data:image/jpeg;base64,/9j/"/></div>`},
		{name: "too many attributes", div: `<div ` + xns + `><p` + manyAttrs(100) + `>x</p></div>`, want: []string{CodeStructure}},
		{name: "problems capped", div: `<div ` + xns + `>x` + manyElements(50) + `</div>`, want: slices.Repeat([]string{CodeInvariant}, maxNarrativeProblems)},
		{name: "event handler and script element reported once each", div: `<div ` + xns + `><p onclick="x">a</p><p onclick="y">b</p><script/><script/></div>`, want: []string{CodeSecurity, CodeSecurity}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range narrativeProblems(tc.div) {
				if p.severity == SeverityWarning {
					got = append(got, "warning")
				} else {
					got = append(got, p.code)
				}
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s\n%+v", diff, narrativeProblems(tc.div))
			}
		})
	}
}

func TestParseErrorText(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		want   []parseError
		wantOK bool
	}{
		{
			name:   "list",
			text:   "error at \"Patient.active\": expected boolean\nerror at \"Patient.name[0]\": unknown field",
			want:   []parseError{{path: "Patient.active", details: "expected boolean"}, {path: "Patient.name[0]", details: "unknown field"}},
			wantOK: true,
		},
		{name: "not a parse error", text: "oneof field not found: oneof_resource"},
		{name: "mixed", text: "error at \"Patient.active\": expected boolean\nsomething else"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseErrorText(tc.text)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(parseError{})); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// Through unmarshalErrors: an error of another type is read from its text.
	got, ok := unmarshalErrors(fmt.Errorf("wrapped: %w", errors.New(`error at "Observation.status": code type mismatch`)))
	if ok {
		t.Errorf("a prefixed message must not parse: %+v", got)
	}
	got, ok = unmarshalErrors(errors.New(`error at "Observation.status": code type mismatch`))
	if want := []parseError{{path: "Observation.status", details: "code type mismatch"}}; !ok || !cmp.Equal(want, got, cmp.AllowUnexported(parseError{})) {
		t.Errorf("unmarshalErrors = %+v, %v; want %+v", got, ok, want)
	}
}
