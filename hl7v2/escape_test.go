package hl7v2

import (
	"strings"
	"testing"
)

func TestDecodeEscapes(t *testing.T) {
	d := DefaultDelimiters
	d5 := d
	d5.Truncation = '#'
	for _, tc := range []struct {
		name, in, want string
		d              Delimiters
	}{
		{"plain", "abc", "abc", d},
		{"delimiters", `a\F\b\S\c\T\d\R\e\E\f`, `a|b^c&d~e\f`, d},
		{"truncation", `a\P\b`, "a#b", d5},
		{"truncation unknown with four characters", `a\P\b`, `a\P\b`, d},
		{"hex", `\X41\\X4243\`, "ABC", d},
		{"hex UTF-8 bytes", `\XC3A9\`, "é", d},
		{"hex odd length kept", `\X414\`, `\X414\`, d},
		{"hex not hex kept", `\XZZ\`, `\XZZ\`, d},
		{"highlight dropped", `\H\bold\N\ text`, "bold text", d},
		{"line break", `one\.br\two`, "one\ntwo", d},
		{"centre", `\.ce\Title`, "\nTitle", d},
		{"space lines", `a\.sp2\b`, "a\n\nb", d},
		{"space default", `a\.sp\b`, "a\nb", d},
		{"skip", `a\.sk3\b`, "a   b", d},
		{"indent dropped", `\.in+4\a\.ti-2\b`, "ab", d},
		{"fill modes dropped", `\.fi\a\.nf\b`, "ab", d},
		{"huge repeat capped", `\.sp999999999\`, strings.Repeat("\n", maxFormatRepeat), d},
		{"charset switch dropped", `\C2842\abc\M2442\`, "abc", d},
		{"custom kept", `\Zabc\`, `\Zabc\`, d},
		{"unterminated kept", `a\F`, `a\F`, d},
		{"unknown then known", `\Q\F\`, `\Q|`, d},
		{"double escape", `a\\b`, `a\\b`, d},
		{"lone escape", `\`, `\`, d},
		{"other delimiters", `a!F!b`, "a|b", Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '!', Subcomponent: '&'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DecodeEscapes(tc.in, tc.d); got != tc.want {
				t.Errorf("DecodeEscapes(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestEscapeText(t *testing.T) {
	d := DefaultDelimiters
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "abc", "abc"},
		{"delimiters", `a|b^c&d~e\f`, `a\F\b\S\c\T\d\R\e\E\f`},
		{"newline", "one\ntwo", `one\.br\two`},
		{"carriage return", "a\rb", `a\X0D\b`},
		{"tab", "a\tb", `a\X09\b`},
		{"unicode untouched", "Zoë €", "Zoë €"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := EscapeText(tc.in, d)
			if got != tc.want {
				t.Errorf("EscapeText(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if back := DecodeEscapes(got, d); back != tc.in {
				t.Errorf("DecodeEscapes(EscapeText(%q)) = %q", tc.in, back)
			}
		})
	}
}

func TestEscapedDelimiterNeverSplits(t *testing.T) {
	m := mustParse(t, "escapes.hl7")
	for _, tc := range []struct{ loc, want string }{
		{"PID-5.1", "O&Brien"},
		{"PID-5.2", "Mary^Kate"},
		{"OBX(2)-5", `Pipe| caret^ amp& tilde~ backslash\`},
		{"OBX-5", "Line one\nLine two flagged 5|6~7\\8\n\nEnd AB \\Zcustom\\"},
	} {
		if got := m.Get(tc.loc); got != tc.want {
			t.Errorf("Get(%s) = %q, want %q", tc.loc, got, tc.want)
		}
	}
	if n := m.Segment("PID").Field(5).Rep(1).NumComponents(); n != 2 {
		t.Errorf("PID-5 components = %d, want 2", n)
	}
	if !m.IsNull("OBX(3)-5") {
		t.Error(`OBX(3)-5 "" is not the explicit null`)
	}
}

func FuzzDecodeEscapes(f *testing.F) {
	for _, s := range []string{`a\F\b`, `\X41\`, `\.br\`, `\.sp3\`, `\`, `\\`, `\Zx\`, "plain", `\H\x\N\`} {
		f.Add(s)
	}
	m := mustParse(f, "escapes.hl7")
	for _, s := range m.SegmentsNamed("OBX") {
		f.Add(s.Field(5).String())
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := DefaultDelimiters
		_ = DecodeEscapes(s, d) // must not panic
		if back := DecodeEscapes(EscapeText(s, d), d); back != s {
			t.Errorf("DecodeEscapes(EscapeText(%q)) = %q", s, back)
		}
	})
}
