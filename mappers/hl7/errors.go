package hl7map

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-health/vigil/hl7v2"
)

// Kinds of mapping problems; each *hl7v2.Error of a MappingError wraps one,
// so callers can test them with errors.Is.
var (
	// ErrUnsupported is the kind of a message type or trigger event that this
	// package does not map (table 0357 codes 200 and 201).
	ErrUnsupported = errors.New("unsupported message")
	// ErrMissing is the kind of a required field that is empty (code 101).
	ErrMissing = errors.New("required field missing")
	// ErrInvalid is the kind of a field whose value has the wrong type or
	// is outside its table (codes 102 and 103).
	ErrInvalid = errors.New("invalid field value")
	// ErrDuplicate is the kind of two rows that map to the same
	// Observation identifier (code 205).
	ErrDuplicate = errors.New("duplicate observation")
)

// maxProblems bounds the problems one message can report.
const maxProblems = 50

// MappingError is the failure to map a message: every problem found, in
// message order, each an *hl7v2.Error with its location and table 0357 code
// and a text that quotes no message content (safe to log and to send back
// in ERR segments). errors.As(err, **hl7v2.Error) and hl7v2.AsError find the
// first problem.
type MappingError struct {
	Problems []*hl7v2.Error
}

// Error implements error.
func (e *MappingError) Error() string {
	if len(e.Problems) == 1 {
		return "hl7map: " + e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hl7map: %d problems", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("; ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems.
func (e *MappingError) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

// problem builds an *hl7v2.Error of the given kind.
func problem(code hl7v2.ErrorCode, loc hl7v2.Location, kind error, msg string) *hl7v2.Error {
	return &hl7v2.Error{Code: code, Severity: hl7v2.SeverityError, Location: loc, Message: msg, Err: kind}
}

// asProblem turns an error of the hl7v2 typed accessors (already an
// *hl7v2.Error with a location) into a problem of kind ErrInvalid.
func asProblem(err error, loc hl7v2.Location, msg string) *hl7v2.Error {
	var he *hl7v2.Error
	if errors.As(err, &he) {
		cp := *he
		if cp.Location.Segment == "" {
			cp.Location = loc
		}
		if cp.Err == nil {
			cp.Err = ErrInvalid
		} else {
			cp.Err = fmt.Errorf("%w: %w", ErrInvalid, cp.Err)
		}
		return &cp
	}
	return &hl7v2.Error{Code: hl7v2.CodeDataType, Severity: hl7v2.SeverityError, Location: loc, Message: msg, Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
}
