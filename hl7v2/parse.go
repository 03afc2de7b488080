package hl7v2

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
)

// Default limits of a Parser.
const (
	DefaultMaxBytes       = 16 << 20 // 16 MiB: room for embedded documents (ED) in lab reports
	DefaultMaxSegments    = 10_000
	DefaultMaxRepetitions = 1_000
	DefaultMaxFields      = 250_000 // in the whole message: bounds the memory a parse takes
)

// Parser parses messages within limits. The zero value uses the defaults.
type Parser struct {
	MaxBytes       int // largest message accepted, in bytes
	MaxSegments    int // most segments in one message
	MaxRepetitions int // most repetitions of one field
	MaxFields      int // most fields in one message, all segments together
	MaxBatchBytes  int // largest batch accepted by ParseBatch (default DefaultMaxBatchBytes)
}

// Parse parses one message with the default limits. See Parser.Parse.
func Parse(data []byte) (*Message, error) {
	var p Parser
	return p.Parse(data)
}

// Parse parses one message. Segments may end with CR, LF or CRLF; the delimiters come from
// MSH-1 and MSH-2 (four or five encoding characters); the text is decoded from the character
// set named in MSH-18 (UTF-8 when none, with a windows-1252 fallback for bytes that are not
// UTF-8). Parse checks the syntax only: see Acceptance.Check for the header rules. Every error
// is an *Error; data is not retained.
func (p *Parser) Parse(data []byte) (*Message, error) {
	maxBytes := orDefault(p.MaxBytes, DefaultMaxBytes)
	if len(data) > maxBytes {
		return nil, limitError(Location{}, fmt.Sprintf("message of %d bytes is over the limit of %d", len(data), maxBytes))
	}
	data = trimLeading(data)
	if !bytes.HasPrefix(data, []byte("MSH")) {
		if bytes.HasPrefix(data, []byte("FHS")) || bytes.HasPrefix(data, []byte("BHS")) {
			return nil, newError(CodeSegmentSequence, Location{Segment: "MSH"}, "batch header found where a message was expected; parse it as a batch")
		}
		return nil, newError(CodeSegmentSequence, Location{Segment: "MSH"}, "message does not start with an MSH segment")
	}
	d, err := headerDelimiters(data, "MSH")
	if err != nil {
		return nil, err
	}
	m := &Message{delims: d}
	text, err := m.decodeCharset(data)
	if err != nil {
		return nil, err
	}
	if err := m.split(text, orDefault(p.MaxSegments, DefaultMaxSegments), orDefault(p.MaxRepetitions, DefaultMaxRepetitions), orDefault(p.MaxFields, DefaultMaxFields)); err != nil {
		return nil, err
	}
	return m, nil
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func limitError(loc Location, msg string) *Error {
	return &Error{Code: CodeInternalError, Severity: SeverityError, Location: loc, Message: msg, Err: ErrLimit}
}

// trimLeading drops a UTF-8 byte order mark and blank lines before the first segment.
func trimLeading(data []byte) []byte {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	return bytes.TrimLeft(data, "\r\n")
}

// headerDelimiters reads MSH-1 and MSH-2 (or FHS/BHS 1 and 2) at the start of data.
func headerDelimiters(data []byte, id string) (Delimiters, error) {
	if len(data) < 4 || !validDelimiter(data[3]) {
		return Delimiters{}, newError(CodeDataType, Location{Segment: id, Field: 1}, "missing or invalid field separator")
	}
	fs := data[3]
	enc := data[4:]
	if i := bytes.IndexAny(enc, string([]byte{fs, '\r', '\n'})); i >= 0 {
		enc = enc[:i]
	}
	return delimitersFrom(fs, string(enc), id)
}

// headerField returns the raw bytes of field n (n >= 3) of the header segment at the start of
// data, delimiters d.
func headerField(data []byte, d Delimiters, n int) []byte {
	line := data
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	// line[3] is the field separator, which is field 1; after it each separator starts a field.
	for i := 2; i <= n; i++ {
		j := bytes.IndexByte(line, d.Field)
		if j < 0 {
			return nil
		}
		line = line[j+1:]
	}
	if j := bytes.IndexByte(line, d.Field); j >= 0 {
		line = line[:j]
	}
	return line
}

// decodeCharset sets the message's character set from MSH-18 and returns data as UTF-8 text.
func (m *Message) decodeCharset(data []byte) (string, error) {
	raw := headerField(data, m.delims, 18)
	if i := bytes.IndexByte(raw, m.delims.Repetition); i >= 0 {
		raw = raw[:i] // the first repetition is the character set of the message
	}
	if i := bytes.IndexByte(raw, m.delims.Component); i >= 0 {
		raw = raw[:i]
	}
	name := string(raw)
	enc, ok := lookupCharset(name)
	if !ok {
		return "", newError(CodeTableValueNotFound, Location{Segment: "MSH", Field: 18}, "unsupported character set (table 0211)")
	}
	m.charset = name
	if enc == nil {
		if utf8.Valid(data) {
			return string(data), nil
		}
		if declaresUTF8(name) {
			return "", newError(CodeDataType, Location{Segment: "MSH", Field: 18}, "message declares UTF-8 but is not valid UTF-8")
		}
		enc = charmap.Windows1252
	}
	m.enc = enc
	text, err := enc.NewDecoder().Bytes(data)
	if err != nil {
		return "", &Error{Code: CodeDataType, Severity: SeverityError, Location: Location{Segment: "MSH", Field: 18}, Message: "text does not match its character set", Err: err}
	}
	return string(text), nil
}

// split cuts text into segments and fields.
func (m *Message) split(text string, maxSegs, maxReps, maxFields int) error {
	fs, rs := m.delims.Field, m.delims.Repetition
	nfs := strings.Count(text, string(fs))
	if nfs > maxFields {
		return limitError(Location{}, fmt.Sprintf("message has more than %d fields", maxFields))
	}
	ncr, nlf := strings.Count(text, "\r"), strings.Count(text, "\n")
	lines := ncr + nlf + 1
	if lines > 2*maxSegs+1 {
		// Blank lines do not count as segments, but this bound keeps the allocations sane.
		lines = 2*maxSegs + 1
	}
	backing := make([]Segment, 0, lines)
	m.segs = make([]*Segment, 0, lines)
	fields := make([]string, 0, nfs+2*lines)
	var counts [24]struct {
		id string
		n  int
	}
	seen := counts[:0]
	for len(text) > 0 {
		var i int
		switch {
		case nlf == 0:
			i = strings.IndexByte(text, '\r')
		case ncr == 0:
			i = strings.IndexByte(text, '\n')
		default:
			i = strings.IndexAny(text, "\r\n")
		}
		var line string
		if i < 0 {
			line, text = text, ""
		} else {
			line, text = text[:i], text[i+1:]
		}
		if line == "" {
			continue
		}
		if len(m.segs) >= maxSegs {
			return limitError(Location{}, fmt.Sprintf("message has more than %d segments", maxSegs))
		}
		if len(line) < 3 || !validSegmentID(line[:3]) || (len(line) > 3 && line[3] != fs) {
			return newError(CodeSegmentSequence, Location{}, fmt.Sprintf("segment %d has no valid segment ID", len(m.segs)+1))
		}
		id := line[:3]
		if id == "MSH" && len(m.segs) > 0 {
			return newError(CodeSegmentSequence, Location{Segment: "MSH", SegmentIndex: 2}, "second MSH segment in one message; parse batches as batches")
		}
		k := 0
		for ; k < len(seen); k++ {
			if seen[k].id == id {
				break
			}
		}
		if k == len(seen) {
			seen = append(seen, struct {
				id string
				n  int
			}{id, 0})
		}
		seen[k].n++
		start := len(fields)
		fields = append(fields, id)
		header := id == "MSH"
		if header {
			fields = append(fields, line[3:4])
		}
		if len(line) > 3 {
			rest := line[4:]
			for {
				j := strings.IndexByte(rest, fs)
				if j < 0 {
					fields = append(fields, rest)
					break
				}
				fields = append(fields, rest[:j])
				rest = rest[j+1:]
			}
		}
		segFields := fields[start:len(fields):len(fields)]
		if strings.Count(line, string(rs)) >= maxReps {
			for f := 1; f < len(segFields); f++ {
				if header && f <= 2 {
					continue
				}
				if strings.Count(segFields[f], string(rs)) >= maxReps {
					return limitError(Location{Segment: id, SegmentIndex: seen[k].n, Field: f}, fmt.Sprintf("field has more than %d repetitions", maxReps))
				}
			}
		}
		backing = append(backing, Segment{m: m, name: id, fields: segFields, index: seen[k].n})
		m.segs = append(m.segs, &backing[len(backing)-1])
	}
	return nil
}

var _ encoding.Encoding = charmap.ISO8859_1
