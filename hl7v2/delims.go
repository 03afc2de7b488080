package hl7v2

import "fmt"

// Delimiters are the separator and escape characters of a message, taken from MSH-1 and MSH-2.
type Delimiters struct {
	Field        byte // MSH-1, usually '|'
	Component    byte // usually '^'
	Repetition   byte // usually '~'
	Escape       byte // usually '\'
	Subcomponent byte // usually '&'
	// Truncation is the v2.7 truncation character (usually '#'), or 0 when MSH-2 has only
	// four characters.
	Truncation byte
}

// DefaultDelimiters are the delimiters recommended by HL7: |^~\&.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// EncodingCharacters returns the value of MSH-2 for d (four or five characters).
func (d Delimiters) EncodingCharacters() string {
	b := []byte{d.Component, d.Repetition, d.Escape, d.Subcomponent}
	if d.Truncation != 0 {
		b = append(b, d.Truncation)
	}
	return string(b)
}

// Validate reports whether d can delimit a message: every character printable, not
// alphanumeric, not a space and all different.
func (d Delimiters) Validate() error {
	chars := []byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent}
	if d.Truncation != 0 {
		chars = append(chars, d.Truncation)
	}
	for i, c := range chars {
		if !validDelimiter(c) {
			return fmt.Errorf("delimiter %d is not a printable non-alphanumeric character", i+1)
		}
		for _, o := range chars[:i] {
			if o == c {
				return fmt.Errorf("delimiter %d repeats an earlier one", i+1)
			}
		}
	}
	return nil
}

func validDelimiter(c byte) bool {
	switch {
	case c <= ' ' || c >= 0x7f:
		return false
	case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return false
	}
	return true
}

// delimitersFrom builds the delimiters of a header segment (MSH, FHS, BHS) from its field
// separator and encoding characters.
func delimitersFrom(fs byte, enc string, seg string) (Delimiters, error) {
	loc := Location{Segment: seg, Field: 2}
	if len(enc) != 4 && len(enc) != 5 {
		return Delimiters{}, newError(CodeDataType, loc, "encoding characters must be 4 or 5 characters")
	}
	d := Delimiters{Field: fs, Component: enc[0], Repetition: enc[1], Escape: enc[2], Subcomponent: enc[3]}
	if len(enc) == 5 {
		d.Truncation = enc[4]
	}
	if err := d.Validate(); err != nil {
		return Delimiters{}, &Error{Code: CodeDataType, Severity: SeverityError, Location: loc, Message: "invalid encoding characters: " + err.Error()}
	}
	return d, nil
}
