package mllp

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func frame(s string) string { return "\x0b" + s + "\x1c\x0d" }

func readAll(r *Reader) (frames []string, errs []error) {
	for {
		f, err := r.ReadFrame()
		if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return frames, errs
		}
		if err != nil {
			errs = append(errs, err)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return frames, errs
			}
			continue
		}
		frames = append(frames, string(f))
	}
}

func TestReadFrame(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		max      int
		oneByte  bool
		want     []string
		wantErrs []error
		dropped  int64
	}{
		{name: "one frame", in: frame("MSH|a"), want: []string{"MSH|a"}},
		{name: "junk before start", in: "junk\r\n" + frame("MSH|a"), want: []string{"MSH|a"}, dropped: 6},
		{name: "many frames in one read", in: frame("A") + frame("B") + frame("C"), want: []string{"A", "B", "C"}},
		{name: "frame over many reads", in: frame("MSH|abcdef\rPID|1\r") + frame("B"), oneByte: true, want: []string{"MSH|abcdef\rPID|1\r", "B"}},
		{name: "end without carriage return", in: "\x0bA\x1c\x0bB\x1c\x0d", want: []string{"A", "B"}},
		{name: "empty frame", in: frame(""), want: []string{""}},
		{name: "oversized then resync", in: frame(strings.Repeat("x", 50)) + frame("ok"), max: 10, want: []string{"ok"}, wantErrs: []error{ErrFrameTooLarge}, dropped: 52},
		{name: "oversized over many reads", in: frame(strings.Repeat("x", 50)) + frame("ok"), max: 10, oneByte: true, want: []string{"ok"}, wantErrs: []error{ErrFrameTooLarge}},
		{name: "new start abandons open frame", in: "\x0bpartial" + frame("B"), want: []string{"B"}, dropped: 8},
		{name: "unterminated", in: frame("A") + "\x0bMSH|b", want: []string{"A"}, wantErrs: []error{io.ErrUnexpectedEOF}},
		{name: "only junk", in: "hello", dropped: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var src io.Reader = strings.NewReader(tc.in)
			if tc.oneByte {
				src = iotest.OneByteReader(src)
			}
			r := NewReader(src, tc.max)
			got, errs := readAll(r)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
			if len(errs) != len(tc.wantErrs) {
				t.Fatalf("errors = %v, want %v", errs, tc.wantErrs)
			}
			for i := range errs {
				if !errors.Is(errs[i], tc.wantErrs[i]) {
					t.Errorf("error %d = %v, want %v", i, errs[i], tc.wantErrs[i])
				}
			}
			if tc.dropped != 0 && r.Dropped() != tc.dropped {
				t.Errorf("Dropped() = %d, want %d", r.Dropped(), tc.dropped)
			}
		})
	}
}

func TestReadFrameFixtures(t *testing.T) {
	b, err := os.ReadFile("../../testdata/hl7/pcd01_framed.mllp")
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(b), 0)
	f, err := r.ReadFrame()
	if err != nil || !bytes.HasPrefix(f, []byte("MSH|")) || r.Dropped() != 6 {
		t.Errorf("pcd01_framed.mllp: %q..., %v, dropped %d", f[:min(len(f), 8)], err, r.Dropped())
	}
	b, err = os.ReadFile("../../testdata/hl7/bad_unterminated.mllp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewReader(bytes.NewReader(b), 0).ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("bad_unterminated.mllp: error = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestWriteFrame(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFrame(&b, []byte("MSH|x")); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "\x0bMSH|x\x1c\x0d" {
		t.Errorf("WriteFrame = %q", got)
	}
	if err := WriteFrame(errWriter{}, []byte("x")); err == nil {
		t.Error("WriteFrame to a failing writer succeeded")
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }

func FuzzReadFrame(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/hl7/*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{StartBlock}) && !strings.HasSuffix(name, ".mllp") {
			b = []byte(frame(string(b)))
		}
		f.Add(b, uint8(64))
	}
	f.Fuzz(func(t *testing.T, data []byte, max uint8) {
		limit := int(max) + 1
		r := NewReader(iotest.HalfReader(bytes.NewReader(data)), limit)
		var total int64
		for i := 0; i < len(data)+2; i++ {
			fr, err := r.ReadFrame()
			if err != nil {
				if errors.Is(err, ErrFrameTooLarge) {
					continue
				}
				break
			}
			if len(fr) > limit {
				t.Fatalf("frame of %d bytes over the limit %d", len(fr), limit)
			}
			if bytes.IndexByte(fr, EndBlock) >= 0 || bytes.IndexByte(fr, StartBlock) >= 0 {
				t.Fatalf("frame holds a framing byte: %q", fr)
			}
			total += int64(len(fr))
		}
		if total+r.Dropped() > int64(len(data)) {
			t.Fatalf("read %d and dropped %d bytes of %d", total, r.Dropped(), len(data))
		}
	})
}
