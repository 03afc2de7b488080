package hl7v2

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// DefaultMaxBatchBytes is the default largest batch accepted by ParseBatch.
const DefaultMaxBatchBytes = 256 << 20

// Batch is the messages between a BHS and its BTS.
type Batch struct {
	Header   *Segment // BHS, or nil for messages sent without one
	Trailer  *Segment // BTS, or nil when Header is nil
	Messages []*Message
}

// BatchFile is the batches between an FHS and its FTS.
type BatchFile struct {
	Header  *Segment // FHS, or nil when the input started with BHS or MSH
	Trailer *Segment // FTS, or nil when Header is nil
	Batches []*Batch
}

// Messages returns every message of every batch, in order.
func (f *BatchFile) Messages() []*Message {
	var out []*Message
	for _, b := range f.Batches {
		out = append(out, b.Messages...)
	}
	return out
}

// ParseBatch parses a batch file with the default limits. See Parser.ParseBatch.
func ParseBatch(data []byte) (*BatchFile, error) {
	var p Parser
	return p.ParseBatch(data)
}

// ParseBatch parses FHS {BHS {MSH ...} BTS} FTS, a lone BHS ... BTS, or plain messages one
// after another. Each message is parsed with p's limits and its own MSH delimiters and
// character set. The counts in BTS-1 (messages in the batch) and FTS-1 (batches in the file)
// are checked when present; a mismatch, a misplaced or missing header or trailer is a 100
// error at the segment.
func (p *Parser) ParseBatch(data []byte) (*BatchFile, error) {
	if maxBytes := orDefault(p.MaxBatchBytes, DefaultMaxBatchBytes); len(data) > maxBytes {
		return nil, limitError(Location{}, fmt.Sprintf("batch of %d bytes is over the limit of %d", len(data), maxBytes))
	}
	data = trimLeading(data)
	if len(data) < 3 {
		return nil, newError(CodeSegmentSequence, Location{Segment: "FHS"}, "empty batch")
	}
	first := string(data[:3])
	switch first {
	case "FHS", "BHS", "MSH":
	default:
		return nil, newError(CodeSegmentSequence, Location{Segment: "FHS"}, "batch does not start with FHS, BHS or MSH")
	}
	d, err := headerDelimiters(data, first)
	if err != nil {
		return nil, err
	}
	env := &Message{delims: d}
	file := &BatchFile{}
	var cur *Batch
	var msgLines [][]byte
	nmsg := 0
	flush := func() error {
		if msgLines == nil {
			return nil
		}
		nmsg++
		m, err := p.Parse(bytes.Join(msgLines, []byte{'\r'}))
		msgLines = nil
		if err != nil {
			return fmt.Errorf("hl7v2: batch message %d: %w", nmsg, err)
		}
		cur.Messages = append(cur.Messages, m)
		return nil
	}
	seqErr := func(seg string, msg string) error {
		return newError(CodeSegmentSequence, Location{Segment: seg}, msg)
	}
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if len(line) == 0 {
			continue
		}
		if file.Trailer != nil {
			return nil, seqErr("FTS", "segment after the file trailer")
		}
		id := ""
		if len(line) >= 3 {
			id = string(line[:3])
		}
		switch id {
		case "FHS", "BHS", "BTS", "FTS":
			if err := flush(); err != nil {
				return nil, err
			}
			seg, err := env.appendLine(envelopeText(line))
			if err != nil {
				return nil, err
			}
			switch id {
			case "FHS":
				if file.Header != nil || len(file.Batches) > 0 {
					return nil, seqErr("FHS", "file header must come first, once")
				}
				file.Header = seg
			case "BHS":
				if cur != nil && cur.Header != nil && cur.Trailer == nil {
					return nil, seqErr("BTS", "batch header before the trailer of the previous batch")
				}
				cur = &Batch{Header: seg}
				file.Batches = append(file.Batches, cur)
			case "BTS":
				if cur == nil || cur.Header == nil || cur.Trailer != nil {
					return nil, seqErr("BTS", "batch trailer without a batch header")
				}
				cur.Trailer = seg
				if err := checkCount(seg, len(cur.Messages), "messages in the batch"); err != nil {
					return nil, err
				}
			case "FTS":
				if file.Header == nil {
					return nil, seqErr("FTS", "file trailer without a file header")
				}
				if cur != nil && cur.Header != nil && cur.Trailer == nil {
					return nil, seqErr("BTS", "batch trailer missing before the file trailer")
				}
				file.Trailer = seg
				if err := checkCount(seg, len(file.Batches), "batches in the file"); err != nil {
					return nil, err
				}
			}
		case "MSH":
			if err := flush(); err != nil {
				return nil, err
			}
			if cur == nil || cur.Trailer != nil {
				if cur != nil && cur.Header != nil {
					return nil, seqErr("MSH", "message after the batch trailer")
				}
				cur = &Batch{}
				file.Batches = append(file.Batches, cur)
			}
			msgLines = [][]byte{line}
		default:
			if msgLines == nil {
				return nil, seqErr("MSH", "segment outside a message")
			}
			msgLines = append(msgLines, line)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if cur != nil && cur.Header != nil && cur.Trailer == nil {
		return nil, seqErr("BTS", "batch trailer missing")
	}
	if file.Header != nil && file.Trailer == nil {
		return nil, seqErr("FTS", "file trailer missing")
	}
	return file, nil
}

// envelopeText returns an FHS/BHS/BTS/FTS line as UTF-8 text.
func envelopeText(line []byte) string {
	if utf8.Valid(line) {
		return string(line)
	}
	s, err := charmap.Windows1252.NewDecoder().Bytes(line)
	if err != nil {
		return string(line)
	}
	return string(s)
}

// checkCount compares field 1 of a trailer with the count found.
func checkCount(seg *Segment, found int, what string) error {
	f := seg.Field(1)
	if f.IsEmpty() {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(f.Value()))
	if err != nil {
		return newError(CodeDataType, Location{Segment: seg.name, Field: 1}, "count is not a number")
	}
	if n != found {
		return newError(CodeSegmentSequence, Location{Segment: seg.name, Field: 1},
			fmt.Sprintf("count says %d %s, found %d", n, what, found))
	}
	return nil
}

// appendLine parses one segment line with the message's delimiters and appends it.
func (m *Message) appendLine(line string) (*Segment, error) {
	fs := m.delims.Field
	if len(line) < 3 || !validSegmentID(line[:3]) || (len(line) > 3 && line[3] != fs) {
		return nil, newError(CodeSegmentSequence, Location{}, "segment has no valid segment ID")
	}
	id := line[:3]
	fields := []string{id}
	if isHeaderID(id) {
		if len(line) < 4 {
			// A header segment carries the field separator right after its ID.
			return nil, newError(CodeSegmentSequence, Location{Segment: id}, "header segment has no field separator")
		}
		fields = append(fields, line[3:4])
	}
	if len(line) > 3 {
		fields = append(fields, strings.Split(line[4:], string(fs))...)
	}
	s := &Segment{m: m, name: id, fields: fields, index: len(m.SegmentsNamed(id)) + 1}
	m.segs = append(m.segs, s)
	return s, nil
}
