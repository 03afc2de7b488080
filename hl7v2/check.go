package hl7v2

import "slices"

// Acceptance is what a receiver accepts. Its Check applies the header rules of HL7 v2.5.1
// chapter 2 to a message and returns the *Error to acknowledge it with.
type Acceptance struct {
	// MessageTypes maps a message code (MSH-9.1) to its accepted trigger events (MSH-9.2);
	// an empty list accepts any event. A nil map accepts every message type.
	MessageTypes map[string][]string
	// ProcessingIDs lists the accepted MSH-11.1 values; nil accepts P, D and T (table 0103).
	ProcessingIDs []string
	// Versions lists the accepted MSH-12.1 values; nil accepts any.
	Versions []string
}

// Check returns nil when m passes the header rules, or the first *Error: 101 when MSH-9,
// MSH-10, MSH-11 or MSH-12 is missing, 200 for an unaccepted message type, 201 event, 202
// processing ID, 203 version, 103 for MSH-15/MSH-16 values outside table 0155.
func (a Acceptance) Check(m *Message) error {
	h := m.Header()
	at := func(f, c int) Location { return Location{Segment: "MSH", Field: f, Comp: c} }
	t := h.Field(9).MSG()
	switch {
	case t.Code == "":
		return newError(CodeRequiredFieldMissing, at(9, 1), "message type is missing")
	case t.Trigger == "" && t.Code != "ACK":
		return newError(CodeRequiredFieldMissing, at(9, 2), "trigger event is missing")
	case h.Field(10).Value() == "":
		return newError(CodeRequiredFieldMissing, at(10, 0), "message control ID is missing")
	case h.Field(11).Value() == "":
		return newError(CodeRequiredFieldMissing, at(11, 1), "processing ID is missing")
	case h.Field(12).Value() == "":
		return newError(CodeRequiredFieldMissing, at(12, 1), "version ID is missing")
	}
	pids := a.ProcessingIDs
	if pids == nil {
		pids = []string{"P", "D", "T"}
	}
	if !slices.Contains(pids, h.Field(11).Value()) {
		return newError(CodeUnsupportedProcessingID, at(11, 1), "processing ID is not accepted")
	}
	if a.Versions != nil && !slices.Contains(a.Versions, h.Field(12).Value()) {
		return newError(CodeUnsupportedVersionID, at(12, 1), "version is not accepted")
	}
	if a.MessageTypes != nil {
		events, ok := a.MessageTypes[t.Code]
		if !ok {
			return newError(CodeUnsupportedMessageType, at(9, 1), "message type is not accepted")
		}
		if len(events) > 0 && !slices.Contains(events, t.Trigger) {
			return newError(CodeUnsupportedEventCode, at(9, 2), "trigger event is not accepted")
		}
	}
	for _, f := range []int{15, 16} {
		switch v := h.Field(f).Value(); v {
		case "", "AL", "NE", "ER", "SU":
		default:
			return newError(CodeTableValueNotFound, at(f, 0), "acknowledgment type is not in table 0155")
		}
	}
	return nil
}
