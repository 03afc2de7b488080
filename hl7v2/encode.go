package hl7v2

// Encode writes the message: segments ended by CR, in the character set of the message
// (MSH-18, or windows-1252 when the parsed bytes fell back to it). Values keep the escaping
// they were parsed or set with, so encoding a parsed well-formed message gives back its bytes.
func (m *Message) Encode() ([]byte, error) {
	b := m.appendText(nil)
	if m.enc == nil {
		return b, nil
	}
	out, err := m.enc.NewEncoder().Bytes(b)
	if err != nil {
		return nil, &Error{Code: CodeDataType, Severity: SeverityError, Location: Location{Segment: "MSH", Field: 18},
			Message: "text cannot be written in the message's character set", Err: err}
	}
	return out, nil
}

// String returns the message as UTF-8 text with CR segment terminators.
func (m *Message) String() string { return string(m.appendText(nil)) }

func (m *Message) appendText(b []byte) []byte {
	if b == nil {
		n := 0
		for _, s := range m.segs {
			n += 4
			for _, f := range s.fields {
				n += len(f) + 1
			}
		}
		b = make([]byte, 0, n)
	}
	for _, s := range m.segs {
		b = s.appendTo(b)
		b = append(b, '\r')
	}
	return b
}

// String returns the segment's text, without a terminator.
func (s *Segment) String() string { return string(s.appendTo(nil)) }

func (s *Segment) appendTo(b []byte) []byte {
	fs := s.m.delims.Field
	b = append(b, s.name...)
	header := s.isHeader()
	for i := 1; i < len(s.fields); i++ {
		if i == 1 && header {
			continue // MSH-1 is the separator itself
		}
		b = append(b, fs)
		b = append(b, s.fields[i]...)
	}
	return b
}
