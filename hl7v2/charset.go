package hl7v2

import (
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
)

// charsets maps MSH-18 values (HL7 table 0211, upper-cased) to their encodings; nil is UTF-8.
var charsets = map[string]encoding.Encoding{
	"":              nil,
	"ASCII":         nil,
	"UNICODE UTF-8": nil,
	"UNICODE":       nil,
	"UTF-8":         nil,
	"8859/1":        charmap.ISO8859_1,
	"8859/2":        charmap.ISO8859_2,
	"8859/3":        charmap.ISO8859_3,
	"8859/4":        charmap.ISO8859_4,
	"8859/5":        charmap.ISO8859_5,
	"8859/6":        charmap.ISO8859_6,
	"8859/7":        charmap.ISO8859_7,
	"8859/8":        charmap.ISO8859_8,
	"8859/9":        charmap.ISO8859_9,
	"8859/10":       charmap.ISO8859_10,
	"8859/13":       charmap.ISO8859_13,
	"8859/14":       charmap.ISO8859_14,
	"8859/15":       charmap.ISO8859_15,
	"8859/16":       charmap.ISO8859_16,
	// Not in table 0211, but sent by real systems.
	"WINDOWS-1252": charmap.Windows1252,
	"CP1252":       charmap.Windows1252,
}

// lookupCharset returns the encoding for an MSH-18 value and whether it is supported.
func lookupCharset(name string) (encoding.Encoding, bool) {
	enc, ok := charsets[strings.ToUpper(strings.TrimSpace(name))]
	return enc, ok
}

// declaresUTF8 reports whether name explicitly promises UTF-8.
func declaresUTF8(name string) bool {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "UNICODE UTF-8", "UNICODE", "UTF-8":
		return true
	}
	return false
}
