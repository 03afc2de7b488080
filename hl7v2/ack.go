package hl7v2

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AckCode is an acknowledgment code (HL7 table 0008), written in MSA-1.
type AckCode string

// Table 0008 codes: AA, AE, AR in original mode; CA, CE, CR for accept acknowledgments in
// enhanced mode.
const (
	AA AckCode = "AA" // application accept
	AE AckCode = "AE" // application error
	AR AckCode = "AR" // application reject
	CA AckCode = "CA" // commit accept
	CE AckCode = "CE" // commit error
	CR AckCode = "CR" // commit reject
)

// ErrACKOfACK is returned by NewACK for a message that is itself an acknowledgment.
var ErrACKOfACK = errors.New("hl7v2: an acknowledgment is never acknowledged")

// ErrNoACKRequested is returned by NewACK when the sender, in enhanced mode, asked (MSH-15 NE,
// ER or SU) not to be sent this accept acknowledgment. Nothing should be sent back.
var ErrNoACKRequested = errors.New("hl7v2: the sender asked for no acknowledgment in this case")

// IsACK reports whether m is an acknowledgment message (MSH-9 code or structure ACK).
func IsACK(m *Message) bool {
	if m == nil || m.Header() == nil {
		return false
	}
	t := m.MessageType()
	return t.Code == "ACK" || t.Structure == "ACK"
}

// IsEnhancedMode reports whether m asks for enhanced acknowledgment mode, that is MSH-15
// (accept acknowledgment type) or MSH-16 (application acknowledgment type) is valued.
func IsEnhancedMode(m *Message) bool {
	h := m.Header()
	return !h.Field(15).IsEmpty() || !h.Field(16).IsEmpty()
}

// Acker builds acknowledgments. The zero value uses random control IDs and the system clock.
type Acker struct {
	// NewControlID returns a unique MSH-10 for each acknowledgment. The default returns 20
	// random hexadecimal characters (the v2.3 length limit of MSH-10).
	NewControlID func() string
	// Now returns the time written in MSH-7.
	Now func() time.Time
}

// NewACK builds an acknowledgment of received with the zero Acker. See Acker.NewACK.
func NewACK(received *Message, code AckCode, errs ...*Error) (*Message, error) {
	var a Acker
	return a.NewACK(received, code, errs...)
}

// NewACK builds the acknowledgment of received. In original mode (MSH-15 and MSH-16 empty) the
// code is AA, AE or AR (CA, CE, CR are mapped to them). In enhanced mode CA, CE, CR build an
// accept acknowledgment, governed by MSH-15, and AA, AE, AR an application acknowledgment,
// governed by MSH-16: ErrNoACKRequested is returned when that field (NE, ER, SU) says not to
// send it. ResponseCode picks the code for a receiver. The header swaps sending and
// receiving application and facility (MSH-3/4 with MSH-5/6, all components kept), has a new
// MSH-10, MSH-9 ACK^<trigger>^ACK, and copies MSH-11, MSH-12 and MSH-18 with the delimiters and
// character set of received. MSA-2 is received MSH-10, and each error becomes an ERR segment
// (ERR-2 location, ERR-3 table 0357 code, ERR-4 severity, ERR-8 message). An acknowledgment is
// never acknowledged: NewACK returns ErrACKOfACK.
func (a *Acker) NewACK(received *Message, code AckCode, errs ...*Error) (*Message, error) {
	if received == nil || received.Header() == nil || received.Header().name != "MSH" {
		return nil, errors.New("hl7v2: ack: received message has no MSH segment")
	}
	if IsACK(received) {
		return nil, ErrACKOfACK
	}
	code, err := ackCodeForMode(received, code)
	if err != nil {
		return nil, err
	}
	d := received.delims
	h := received.Header()
	raw := func(i int) string { return h.Field(i).String() }

	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	newID := randomControlID
	if a.NewControlID != nil {
		newID = a.NewControlID
	}
	msgType := "ACK"
	if trig := piece(piece(raw(9), d.Repetition, 1), d.Component, 2); trig != "" {
		msgType = "ACK" + string(d.Component) + trig + string(d.Component) + "ACK"
	}
	fields := []string{"MSH", string([]byte{d.Field}), d.EncodingCharacters(),
		raw(5), raw(6), raw(3), raw(4), now().Format("20060102150405-0700"), "",
		msgType, escapeText(newID(), &d), raw(11), raw(12)}
	if cs := raw(18); cs != "" {
		fields = append(fields, "", "", "", "", "", cs)
	}
	ack := &Message{delims: d, enc: received.enc, charset: received.charset}
	ack.segs = append(ack.segs,
		&Segment{m: ack, name: "MSH", fields: fields, index: 1},
		&Segment{m: ack, name: "MSA", fields: []string{"MSA", string(code), raw(10)}, index: 1})
	for i, e := range errs {
		if e == nil {
			continue
		}
		sev := e.Severity
		if sev == "" {
			sev = SeverityError
		}
		cs := string(d.Component)
		errFields := []string{"ERR", "", e.Location.erl(d),
			fmt.Sprintf("%d%s%s%sHL70357", int(e.Code), cs, escapeText(e.Code.Text(), &d), cs),
			string(sev), "", "", "", escapeText(e.Message, &d)}
		for len(errFields) > 1 && errFields[len(errFields)-1] == "" {
			errFields = errFields[:len(errFields)-1]
		}
		ack.segs = append(ack.segs, &Segment{m: ack, name: "ERR", fields: errFields, index: i + 1})
	}
	return ack, nil
}

// ackKind splits a code into its outcome (0 accept, 1 error, 2 reject) and family.
func ackKind(code AckCode) (kind int, commit bool, err error) {
	switch code {
	case AA:
		return 0, false, nil
	case AE:
		return 1, false, nil
	case AR:
		return 2, false, nil
	case CA:
		return 0, true, nil
	case CE:
		return 1, true, nil
	case CR:
		return 2, true, nil
	}
	return 0, false, fmt.Errorf("hl7v2: ack: unknown acknowledgment code %q", code)
}

// wants applies an acknowledgment type (table 0155) to an outcome; empty means always.
func wants(ackType string, kind int) bool {
	switch strings.ToUpper(ackType) {
	case "NE":
		return false
	case "ER":
		return kind != 0
	case "SU":
		return kind == 0
	}
	return true
}

// ackCodeForMode maps code to the acknowledgment mode of received and applies MSH-15 (accept
// acknowledgments, CA/CE/CR) or MSH-16 (application acknowledgments, AA/AE/AR) in enhanced
// mode.
func ackCodeForMode(received *Message, code AckCode) (AckCode, error) {
	kind, commit, err := ackKind(code)
	if err != nil {
		return "", err
	}
	if !IsEnhancedMode(received) {
		return [...]AckCode{AA, AE, AR}[kind], nil
	}
	field := 16
	if commit {
		field = 15
	}
	if !wants(received.Header().Field(field).Value(), kind) {
		return "", ErrNoACKRequested
	}
	if commit {
		return [...]AckCode{CA, CE, CR}[kind], nil
	}
	return code, nil
}

// ResponseCode returns the code of the acknowledgment that a receiver which has finished with
// received (stored it, or failed with err) sends back on the same connection, and false when
// the sender asked for none. In original mode it is AckCodeFor(err). In enhanced mode it is
// the accept acknowledgment (CA, CE, CR) when MSH-15 asks for one in this case, else the
// application acknowledgment (AA, AE, AR) when MSH-16 does: IHE PCD-01 senders often send
// MSH-15 NE and MSH-16 AL and expect AA.
func ResponseCode(received *Message, err error) (AckCode, bool) {
	code := AckCodeFor(err)
	if received == nil || received.Header() == nil || !IsEnhancedMode(received) {
		return code, true
	}
	kind, _, _ := ackKind(code)
	h := received.Header()
	if wants(h.Field(15).Value(), kind) {
		return [...]AckCode{CA, CE, CR}[kind], true
	}
	if wants(h.Field(16).Value(), kind) {
		return code, true
	}
	return "", false
}

func randomControlID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
