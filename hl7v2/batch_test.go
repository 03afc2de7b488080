package hl7v2

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBatchFile(t *testing.T) {
	f, err := ParseBatch(readFixture(t, "batch_file.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Header == nil || f.Trailer == nil || f.Header.Field(9).Value() != "FILE0001" {
		t.Fatalf("file header/trailer = %v/%v", f.Header, f.Trailer)
	}
	if len(f.Batches) != 1 || f.Batches[0].Header.Get("9") != "BATCH0001" {
		t.Fatalf("batches = %d", len(f.Batches))
	}
	msgs := f.Messages()
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ControlID()+"="+m.Get("OBX-5"))
	}
	if got := strings.Join(ids, ","); got != "B1M1=70,B1M2=71,B1M3=72" {
		t.Errorf("messages = %s", got)
	}
	if got := f.Header.Field(2).Value(); got != `^~\&` {
		t.Errorf("FHS-2 = %q", got)
	}
}

func TestParseBatchErrors(t *testing.T) {
	msg := func(id string) string {
		return "MSH|^~\\&|S|SF|R|RF|20261125||ORU^R01|" + id + "|P|2.6\rPID|1\r"
	}
	for _, tc := range []struct {
		name string
		in   string
		code ErrorCode
		loc  string
		want string // substring of the error
	}{
		{name: "BTS count", in: string(readFixture(t, "bad_batch_count.hl7")), code: CodeSegmentSequence, loc: "BTS-1", want: "count says 4 messages in the batch, found 3"},
		{name: "FTS count", in: string(readFixture(t, "bad_batch_file_count.hl7")), code: CodeSegmentSequence, loc: "FTS-1", want: "count says 2 batches in the file, found 1"},
		{name: "BTS count not a number", in: "BHS|^~\\&\r" + msg("1") + "BTS|x\r", code: CodeDataType, loc: "BTS-1"},
		{name: "missing BTS", in: "BHS|^~\\&\r" + msg("1"), code: CodeSegmentSequence, loc: "BTS"},
		{name: "missing FTS", in: "FHS|^~\\&\rBHS|^~\\&\r" + msg("1") + "BTS|1\r", code: CodeSegmentSequence, loc: "FTS"},
		{name: "BTS without BHS", in: msg("1") + "BTS|1\r", code: CodeSegmentSequence, loc: "BTS"},
		{name: "FTS without FHS", in: "BHS|^~\\&\r" + msg("1") + "BTS|1\rFTS|1\r", code: CodeSegmentSequence, loc: "FTS"},
		{name: "segment after FTS", in: "FHS|^~\\&\rFTS|0\r" + msg("1"), code: CodeSegmentSequence, loc: "FTS"},
		{name: "message after BTS", in: "BHS|^~\\&\r" + msg("1") + "BTS|1\r" + msg("2"), code: CodeSegmentSequence, loc: "MSH"},
		{name: "nested BHS", in: "BHS|^~\\&\r" + msg("1") + "BHS|^~\\&\r", code: CodeSegmentSequence, loc: "BTS"},
		{name: "orphan segment", in: "BHS|^~\\&\rPID|1\r", code: CodeSegmentSequence, loc: "MSH"},
		{name: "bad message", in: "BHS|^~\\&\rMSH|^~|x\rBTS|1\r", code: CodeDataType, loc: "MSH-2", want: "batch message 1"},
		{name: "not a batch", in: "PID|1\r", code: CodeSegmentSequence, loc: "FHS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBatch([]byte(tc.in))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error = %v, want *Error", err)
			}
			if e.Code != tc.code || e.Location.String() != tc.loc || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v (%d at %s), want %d at %s containing %q", err, e.Code, e.Location, tc.code, tc.loc, tc.want)
			}
		})
	}
}

func TestParseBatchLimit(t *testing.T) {
	p := Parser{MaxBatchBytes: 100}
	if _, err := p.ParseBatch(readFixture(t, "batch_file.hl7")); !errors.Is(err, ErrLimit) {
		t.Errorf("ParseBatch over MaxBatchBytes = %v, want ErrLimit", err)
	}
	p = Parser{MaxSegments: 2}
	if _, err := p.ParseBatch(readFixture(t, "batch_file.hl7")); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "batch message 1") {
		t.Errorf("ParseBatch with a message over MaxSegments = %v, want ErrLimit in message 1", err)
	}
}

func TestParseBatchWithoutHeaders(t *testing.T) {
	in := "MSH|^~\\&|S|SF|R|RF|20261125||ORU^R01|A|P|2.6\nPID|1\nMSH|^~\\&|S|SF|R|RF|20261125||ORU^R01|B|P|2.6\nPID|2\n"
	f, err := ParseBatch([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if f.Header != nil || len(f.Batches) != 1 || len(f.Batches[0].Messages) != 2 || f.Messages()[1].Get("PID-1") != "2" {
		t.Errorf("plain message stream parsed as %+v", f)
	}
}
