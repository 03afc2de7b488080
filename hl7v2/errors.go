package hl7v2

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrorCode is an HL7 message error condition code (HL7 table 0357).
type ErrorCode int

// Table 0357 codes.
const (
	CodeSuccess                 ErrorCode = 0   // message accepted
	CodeSegmentSequence         ErrorCode = 100 // segment sequence error
	CodeRequiredFieldMissing    ErrorCode = 101 // required field missing
	CodeDataType                ErrorCode = 102 // data type error
	CodeTableValueNotFound      ErrorCode = 103 // table value not found
	CodeUnsupportedMessageType  ErrorCode = 200 // unsupported message type
	CodeUnsupportedEventCode    ErrorCode = 201 // unsupported event code
	CodeUnsupportedProcessingID ErrorCode = 202 // unsupported processing id
	CodeUnsupportedVersionID    ErrorCode = 203 // unsupported version id
	CodeUnknownKey              ErrorCode = 204 // unknown key identifier
	CodeDuplicateKey            ErrorCode = 205 // duplicate key identifier
	CodeRecordLocked            ErrorCode = 206 // application record locked
	CodeInternalError           ErrorCode = 207 // application internal error
)

var codeText = map[ErrorCode]string{
	CodeSuccess:                 "Message accepted",
	CodeSegmentSequence:         "Segment sequence error",
	CodeRequiredFieldMissing:    "Required field missing",
	CodeDataType:                "Data type error",
	CodeTableValueNotFound:      "Table value not found",
	CodeUnsupportedMessageType:  "Unsupported message type",
	CodeUnsupportedEventCode:    "Unsupported event code",
	CodeUnsupportedProcessingID: "Unsupported processing id",
	CodeUnsupportedVersionID:    "Unsupported version id",
	CodeUnknownKey:              "Unknown key identifier",
	CodeDuplicateKey:            "Duplicate key identifier",
	CodeRecordLocked:            "Application record locked",
	CodeInternalError:           "Application internal error",
}

// Text returns the table 0357 description of c, such as "Data type error".
func (c ErrorCode) Text() string {
	if t, ok := codeText[c]; ok {
		return t
	}
	return "Error " + strconv.Itoa(int(c))
}

// Severity is an error severity from HL7 table 0516.
type Severity string

// Table 0516 severities.
const (
	SeverityError       Severity = "E"
	SeverityWarning     Severity = "W"
	SeverityInformation Severity = "I"
)

// Error is a problem with a message, at a location, with a table 0357 code. Message is a short
// text safe to return to the sender and to log: it never quotes message content.
type Error struct {
	Code     ErrorCode
	Severity Severity // empty means SeverityError
	Location Location // zero when the problem is not tied to one place
	Message  string
	Err      error // underlying cause, if any; ErrLimit for limit errors
}

func newError(code ErrorCode, loc Location, msg string) *Error {
	return &Error{Code: code, Severity: SeverityError, Location: loc, Message: msg}
}

// Error implements error.
func (e *Error) Error() string {
	s := "hl7v2: "
	if e.Location.Segment != "" {
		s += e.Location.String() + ": "
	}
	s += fmt.Sprintf("%d %s", int(e.Code), e.Code.Text())
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrLimit is matched (errors.Is) by errors about a message over a configured limit: the Err
// of such an *Error.
var ErrLimit = errors.New("hl7v2: limit exceeded")

// AsError returns the *Error in err's chain, or, for any other error, a new code 207
// (application internal error) whose Message does not repeat err's text. It returns nil for a
// nil err.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternalError, Severity: SeverityError, Message: "application internal error", Err: err}
}

// AckCodeFor returns the original-mode acknowledgment code for err: AA for nil, AR when the
// message is rejected for its type, event, processing id or version (codes 200 to 203) or for
// being over a limit (ErrLimit: sending it again cannot help), AE otherwise.
func AckCodeFor(err error) AckCode {
	if err == nil {
		return AA
	}
	if errors.Is(err, ErrLimit) {
		return AR
	}
	switch AsError(err).Code {
	case CodeUnsupportedMessageType, CodeUnsupportedEventCode, CodeUnsupportedProcessingID, CodeUnsupportedVersionID:
		return AR
	}
	return AE
}
