// Package mllp carries HL7 v2 messages over TCP with the Minimal Lower Layer Protocol: each
// message framed as 0x0B <message> 0x1C 0x0D. It has the framing (Reader, WriteFrame), a server
// that hands each message to a Handler and writes the acknowledgment only after the Handler
// returns, and a client that sends a message and waits for its acknowledgment.
//
// Nothing here logs message content unless Server.LogMessageContentPHI is set.
package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Frame bytes.
const (
	StartBlock     byte = 0x0B // vertical tab: starts a frame
	EndBlock       byte = 0x1C // file separator: ends a frame
	CarriageReturn byte = 0x0D // follows EndBlock
)

// DefaultMaxFrameSize is the largest frame a Reader accepts when none is given.
const DefaultMaxFrameSize = 16 << 20

// ErrFrameTooLarge is matched (errors.Is) by the *FrameTooLargeError that ReadFrame returns
// for a frame over the maximum size. The frame is dropped; the next ReadFrame resumes at the
// next start byte.
var ErrFrameTooLarge = errors.New("mllp: frame too large")

// headSize is how much of an oversized frame FrameTooLargeError keeps: enough for an MSH
// segment, so that the frame can still be rejected with an acknowledgment.
const headSize = 4096

// FrameTooLargeError reports a frame over the maximum size.
type FrameTooLargeError struct {
	Max  int    // the maximum frame size
	Head []byte // the first bytes of the frame (up to 4 KiB)
}

// Error implements error.
func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("mllp: frame too large: over %d bytes", e.Max)
}

// Is makes errors.Is(err, ErrFrameTooLarge) true.
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrFrameTooLarge }

// Reader reads MLLP frames. Bytes outside frames are dropped and counted. A ReadFrame cut by
// a timeout can be called again: the partial frame is kept.
type Reader struct {
	br      *bufio.Reader
	max     int
	dropped int64
	inFrame bool
	afterCR bool // a frame just ended with 0x1C: a 0x0D may follow
	buf     []byte
	onStart func() // called when a start byte is read
}

// NewReader returns a Reader of frames of at most maxFrameSize bytes (DefaultMaxFrameSize
// when maxFrameSize <= 0).
func NewReader(r io.Reader, maxFrameSize int) *Reader {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 32<<10), max: maxFrameSize}
}

// Dropped returns the number of bytes dropped so far: bytes before a start byte, frames
// abandoned by a new start byte, and frames too large.
func (r *Reader) Dropped() int64 { return r.dropped }

// ReadFrame returns the content of the next frame, without its framing bytes. The slice is
// the caller's. At the end of the input it returns io.EOF, or an error wrapping
// io.ErrUnexpectedEOF when a frame was left open.
func (r *Reader) ReadFrame() ([]byte, error) {
	for {
		if !r.inFrame {
			if err := r.findStart(); err != nil {
				return nil, err
			}
		}
		chunk, err := r.br.ReadSlice(EndBlock)
		found := err == nil
		data := chunk
		if found {
			data = chunk[:len(chunk)-1]
		}
		if i := bytes.LastIndexByte(data, StartBlock); i >= 0 {
			// A new frame started before this one ended: the sender gave up on it.
			r.dropped += int64(len(r.buf) + i + 1)
			r.buf = r.buf[:0]
			data = data[i+1:]
			if r.onStart != nil {
				r.onStart()
			}
		}
		if len(r.buf)+len(data) > r.max {
			r.dropped += int64(len(r.buf) + len(data) + 1)
			head := append([]byte(nil), r.buf[:min(len(r.buf), headSize)]...)
			head = append(head, data[:min(len(data), headSize-len(head))]...)
			r.buf = nil
			r.inFrame = false
			return nil, &FrameTooLargeError{Max: r.max, Head: head}
		}
		r.buf = append(r.buf, data...)
		switch {
		case found:
			// Drop the 0x0D now if it is here; else the next findStart drops it. Waiting for
			// it would stall a sender that omits it until its ACK.
			r.afterCR = true
			if r.br.Buffered() > 0 {
				if b, _ := r.br.Peek(1); b[0] == CarriageReturn {
					_, _ = r.br.Discard(1)
				}
				r.afterCR = false
			}
			out := make([]byte, len(r.buf))
			copy(out, r.buf)
			r.buf = r.buf[:0]
			r.inFrame = false
			return out, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			r.dropped += int64(len(r.buf) + 1)
			r.buf = r.buf[:0]
			r.inFrame = false
			return nil, fmt.Errorf("mllp: frame not terminated: %w", io.ErrUnexpectedEOF)
		default:
			return nil, err // a timeout, say: the partial frame is kept
		}
	}
}

// findStart drops bytes up to and including the next start byte.
func (r *Reader) findStart() error {
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		if r.afterCR {
			r.afterCR = false
			if b == CarriageReturn {
				continue
			}
		}
		if b == StartBlock {
			r.inFrame = true
			r.buf = r.buf[:0]
			if r.onStart != nil {
				r.onStart()
			}
			return nil
		}
		r.dropped++
	}
}

// WriteFrame writes msg as one frame, in one Write.
func WriteFrame(w io.Writer, msg []byte) error {
	buf := make([]byte, 0, len(msg)+3)
	buf = append(buf, StartBlock)
	buf = append(buf, msg...)
	buf = append(buf, EndBlock, CarriageReturn)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("mllp: write frame: %w", err)
	}
	return nil
}
