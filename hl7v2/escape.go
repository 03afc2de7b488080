package hl7v2

import (
	"strconv"
	"strings"

	"golang.org/x/text/encoding"
)

// maxFormatRepeat caps the count in \.sp n\ and \.sk n\ so that a tiny escape cannot expand
// into a huge string.
const maxFormatRepeat = 100

// DecodeEscapes decodes the HL7 escape sequences of s, a single component or subcomponent
// value written with delimiters d: \F\ \S\ \T\ \R\ \E\ \P\ become the delimiters, \Xhh..\ the
// bytes it spells (read as UTF-8), \.br\ and \.ce\ a newline, \.sp n\ n newlines, \.sk n\ n
// spaces; highlighting (\H\ \N\), indentation (\.in\ \.ti\), fill modes (\.fi\ \.nf\) and
// character set switches (\C..\ \M..\) are dropped. Unknown or malformed sequences are kept
// as they are.
func DecodeEscapes(s string, d Delimiters) string { return decodeEscapes(s, &d, nil) }

func decodeEscapes(s string, d *Delimiters, enc encoding.Encoding) string {
	e := d.Escape
	if strings.IndexByte(s, e) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for {
		i := strings.IndexByte(s, e)
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		rest := s[i+1:]
		j := strings.IndexByte(rest, e)
		if j < 0 {
			b.WriteByte(e)
			b.WriteString(rest)
			break
		}
		if writeEscape(&b, rest[:j], d, enc) {
			s = rest[j+1:]
			continue
		}
		// Unknown: keep the text as it is; its closing escape character may open the
		// next sequence. s shrinks by at least one byte, so the loop ends.
		b.WriteByte(e)
		b.WriteString(rest[:j])
		s = rest[j:]
	}
	return b.String()
}

// writeEscape writes the decoding of one escape sequence body (without its escape
// characters) and reports whether it knew it.
func writeEscape(b *strings.Builder, seq string, d *Delimiters, enc encoding.Encoding) bool {
	if len(seq) == 0 {
		return false
	}
	if len(seq) == 1 {
		switch seq[0] {
		case 'F':
			b.WriteByte(d.Field)
		case 'S':
			b.WriteByte(d.Component)
		case 'T':
			b.WriteByte(d.Subcomponent)
		case 'R':
			b.WriteByte(d.Repetition)
		case 'E':
			b.WriteByte(d.Escape)
		case 'P':
			if d.Truncation == 0 {
				return false
			}
			b.WriteByte(d.Truncation)
		case 'H', 'N':
			// Highlighting on and off: no meaning in plain text.
		default:
			return false
		}
		return true
	}
	switch seq[0] {
	case 'X':
		return writeHex(b, seq[1:], enc)
	case 'C', 'M':
		// ISO 2022 character set switches: the text is already decoded to UTF-8.
		return isHex(seq[1:]) && len(seq) > 1
	case '.':
		return writeFormat(b, seq[1:])
	}
	return false
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if fromHex(s[i]) < 0 {
			return false
		}
	}
	return true
}

func fromHex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

func writeHex(b *strings.Builder, hex string, enc encoding.Encoding) bool {
	if len(hex) == 0 || len(hex)%2 != 0 || !isHex(hex) {
		return false
	}
	raw := make([]byte, len(hex)/2)
	for i := range raw {
		raw[i] = byte(fromHex(hex[2*i])<<4 | fromHex(hex[2*i+1]))
	}
	if enc != nil {
		if dec, err := enc.NewDecoder().Bytes(raw); err == nil {
			raw = dec
		}
	}
	b.Write(raw)
	return true
}

func writeFormat(b *strings.Builder, f string) bool {
	if len(f) < 2 {
		return false
	}
	cmd, arg := f[:2], strings.TrimSpace(f[2:])
	n := 1
	if arg != "" {
		v, err := strconv.Atoi(strings.TrimPrefix(arg, "+"))
		if err != nil {
			return false
		}
		n = min(max(v, 0), maxFormatRepeat)
	}
	switch cmd {
	case "br", "ce":
		if arg != "" {
			return false
		}
		b.WriteByte('\n')
	case "sp":
		b.WriteString(strings.Repeat("\n", n))
	case "sk":
		b.WriteString(strings.Repeat(" ", n))
	case "in", "ti":
		// Indentation has no plain-text rendering worth the guess.
	case "fi", "nf":
		if arg != "" {
			return false
		}
	default:
		return false
	}
	return true
}

// EscapeText escapes s for use as one component or subcomponent value with delimiters d:
// delimiters become \F\ \S\ \T\ \R\ \E\ (\P\ for the truncation character), a newline \.br\
// and other control characters \Xhh\.
func EscapeText(s string, d Delimiters) string { return escapeText(s, &d) }

func escapeText(s string, d *Delimiters) string {
	i := 0
	for ; i < len(s); i++ {
		if needsEscape(s[i], d) {
			break
		}
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if !needsEscape(c, d) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(d.Escape)
		switch c {
		case d.Field:
			b.WriteByte('F')
		case d.Component:
			b.WriteByte('S')
		case d.Subcomponent:
			b.WriteByte('T')
		case d.Repetition:
			b.WriteByte('R')
		case d.Escape:
			b.WriteByte('E')
		case '\n':
			b.WriteString(".br")
		default:
			if d.Truncation != 0 && c == d.Truncation {
				b.WriteByte('P')
				break
			}
			const digits = "0123456789ABCDEF"
			b.WriteByte('X')
			b.WriteByte(digits[c>>4])
			b.WriteByte(digits[c&15])
		}
		b.WriteByte(d.Escape)
	}
	return b.String()
}

func needsEscape(c byte, d *Delimiters) bool {
	return c < 0x20 || c == d.Field || c == d.Component || c == d.Repetition || c == d.Escape ||
		c == d.Subcomponent || (d.Truncation != 0 && c == d.Truncation)
}
