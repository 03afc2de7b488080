package hl7map

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/mappers"
)

// Options tune MapMessage.
type Options struct {
	// Now is the current time. When it is not zero every device reading is
	// checked with mappers.Validate (metric unit, physical range, not later
	// than Now+Skew) like ingest does, and a failing reading is a 102 error
	// at its OBX row; the zero value skips those checks.
	Now time.Time
	// Skew is the clock skew allowed for reading times; 0 means 5 minutes.
	Skew time.Duration
	// Location is the time zone of date/times sent without a UTC offset;
	// nil means UTC.
	Location *time.Location
	// Systems maps an assigning authority namespace (HD-1, as in
	// "VIGIL_HOSP") to the identifier system to use for it, overriding the
	// default rules (see the package documentation). Use it to give one
	// system to a facility that some senders name by OID and others by
	// namespace only.
	Systems map[string]string
}

// Result is everything one message maps to. Resources are FHIR JSON trees
// (map[string]any) with ids left empty; references between them use the
// "urn:uuid:" fullUrls of the entries, as in a transaction Bundle, and each
// resource that must be matched rather than duplicated carries a match
// condition.
type Result struct {
	// Entries are in dependency order: Patient, Encounter, Device(s),
	// Observations, DiagnosticReport(s).
	Entries []Entry
}

// Entry is one resource of a Result.
type Entry struct {
	// FullURL is the "urn:uuid:..." used by references in other entries. It
	// is derived from MSH-10 and the resource's identity, so mapping the same
	// message twice gives the same Result.
	FullURL  string
	Resource map[string]any
	// IfNoneExist is the search query (such as
	// "identifier=urn:oid:2.16.840.1.113883.3.9999|MRN0012345") that finds
	// the resource if it already exists, URL-encoded for url.ParseQuery:
	// the caller creates the resource only if none matches.
	IfNoneExist string
	// UpdateIfExists asks the caller to replace the match of IfNoneExist
	// with Resource (a conditional update), as for the Patient of an
	// ADT^A08, rather than keep it.
	UpdateIfExists bool
}

// Resources returns the resources of the result, in order.
func (r *Result) Resources() []map[string]any {
	out := make([]map[string]any, len(r.Entries))
	for i, e := range r.Entries {
		out[i] = e.Resource
	}
	return out
}

// MapMessage maps an ORU^R01 (device or laboratory) or ADT message to FHIR
// resources. It returns a *MappingError listing every problem when the
// message cannot be mapped: codes 200/201 for message types and events it
// does not map, 101 for missing required fields, 102/103 for wrong values.
func MapMessage(m *hl7v2.Message, opts Options) (*Result, error) {
	if m == nil || m.Header() == nil {
		return nil, &MappingError{Problems: []*hl7v2.Error{problem(hl7v2.CodeRequiredFieldMissing, hl7v2.Location{Segment: "MSH"}, ErrMissing, "no message header")}}
	}
	x := newMapper(m, opts)
	typ := m.MessageType()
	typLoc := hl7v2.Location{Segment: "MSH", Field: 9, Comp: 1}
	evLoc := hl7v2.Location{Segment: "MSH", Field: 9, Comp: 2}
	switch strings.ToUpper(typ.Code) {
	case "ORU":
		if strings.ToUpper(typ.Trigger) != "R01" {
			x.fail(problem(hl7v2.CodeUnsupportedEventCode, evLoc, ErrUnsupported, "only ORU^R01 is mapped"))
			break
		}
		x.mapORU()
	case "ADT":
		ev := strings.ToUpper(typ.Trigger)
		switch ev {
		case "A01", "A03", "A04", "A08", "A28", "A31":
			x.mapADT(ev)
		default:
			x.fail(problem(hl7v2.CodeUnsupportedEventCode, evLoc, ErrUnsupported, "ADT event not mapped (A01, A03, A04, A08, A28, A31 are)"))
		}
	case "":
		x.fail(problem(hl7v2.CodeRequiredFieldMissing, typLoc, ErrMissing, "message type missing"))
	default:
		x.fail(problem(hl7v2.CodeUnsupportedMessageType, typLoc, ErrUnsupported, "message type not mapped (ORU^R01 and ADT are)"))
	}
	if len(x.errs) > 0 {
		x.sortProblems()
		return nil, &MappingError{Problems: x.errs}
	}
	return &Result{Entries: append(x.entries, x.reports...)}, nil
}

// mapper holds the state of one MapMessage call.
type mapper struct {
	m       *hl7v2.Message
	opts    Options
	errs    []*hl7v2.Error
	entries []Entry

	// facility is the sending facility (MSH-4), the assigning authority of
	// identifiers that name none.
	facility hl7v2.HD

	// reports are the DiagnosticReports, added after every Observation.
	reports []Entry

	patientURL   string
	patientIdent mappers.Identifier
	encounterURL string
}

func newMapper(m *hl7v2.Message, opts Options) *mapper {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Skew == 0 {
		opts.Skew = 5 * time.Minute
	}
	return &mapper{m: m, opts: opts, facility: m.Header().Field(4).HD()}
}

// fail records a problem, once per code and location.
func (x *mapper) fail(e *hl7v2.Error) {
	for _, p := range x.errs {
		if p.Code == e.Code && p.Location == e.Location {
			return
		}
	}
	if len(x.errs) < maxProblems {
		x.errs = append(x.errs, e)
	}
}

// sortProblems puts the problems in message order.
func (x *mapper) sortProblems() {
	pos := map[string]int{}
	for i, s := range x.m.Segments() {
		pos[s.Name()+"\x00"+strconv.Itoa(max(s.Index(), 1))] = i
	}
	key := func(l hl7v2.Location) [5]int {
		p, ok := pos[l.Segment+"\x00"+strconv.Itoa(max(l.SegmentIndex, 1))]
		if !ok {
			p = -1
		}
		return [5]int{p, l.Field, l.Rep, l.Comp, l.Sub}
	}
	sort.SliceStable(x.errs, func(i, j int) bool {
		a, b := key(x.errs[i].Location), key(x.errs[j].Location)
		for k := range a {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return false
	})
}

// urlNamespace is the UUID namespace of the fullUrls of mapped entries.
var urlNamespace = uuid.MustParse("6f1d3c1e-5b0a-4a43-9a52-7c1f0e6f2b10")

// fullURL derives the entry's placeholder from the message control id and
// the resource's identity within the message.
func (x *mapper) fullURL(kind, key string) string {
	return "urn:uuid:" + uuid.NewSHA1(urlNamespace, []byte(x.m.ControlID()+"\x00"+kind+"\x00"+key)).String()
}

func (x *mapper) add(e Entry) { x.entries = append(x.entries, e) }

// loc builds the location of a field of a segment.
func loc(s *hl7v2.Segment, field int) hl7v2.Location {
	return hl7v2.Location{Segment: s.Name(), SegmentIndex: s.Index(), Field: field}
}

// system returns the identifier system of an assigning authority (see the
// package documentation); an empty HD is the sending facility.
func (x *mapper) system(hd hl7v2.HD) string {
	if hd.NamespaceID == "" && hd.UniversalID == "" {
		hd = x.facility
	}
	if s, ok := x.opts.Systems[hd.NamespaceID]; ok && hd.NamespaceID != "" {
		return s
	}
	if hd.UniversalID != "" {
		switch strings.ToUpper(hd.UniversalIDType) {
		case "ISO":
			return "urn:oid:" + hd.UniversalID
		case "UUID":
			return "urn:uuid:" + strings.ToLower(hd.UniversalID)
		case "URI", "URL":
			return hd.UniversalID
		}
	}
	if hd.NamespaceID != "" {
		return vigilHL7Prefix + urnEscape(hd.NamespaceID)
	}
	if hd.UniversalID != "" {
		return vigilHL7Prefix + urnEscape(hd.UniversalID)
	}
	return ""
}

// tokenEscaper escapes the FHIR search special characters of a token.
var tokenEscaper = strings.NewReplacer(`\`, `\\`, `|`, `\|`, `,`, `\,`, `$`, `\$`)

// identifierQuery builds the URL-encoded "identifier=system|value" search
// of a token, with the FHIR search escapes in the value.
func identifierQuery(system, value string) string {
	esc := tokenEscaper
	tok := esc.Replace(value)
	if system != "" {
		tok = esc.Replace(system) + "|" + tok
	}
	return "identifier=" + queryEscape(tok)
}

// queryEscape percent-encodes what url.ParseQuery would misread.
func queryEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("%&+#;=", c) >= 0 {
			b.WriteString("%")
			b.WriteByte("0123456789ABCDEF"[c>>4])
			b.WriteByte("0123456789ABCDEF"[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// coding builds a FHIR Coding from an HL7 code triplet.
func coding(code, text, sys string) map[string]any {
	c := map[string]any{"code": code}
	if s := systemOf(sys); s != "" {
		c["system"] = s
	}
	if text != "" {
		c["display"] = text
	}
	return c
}

// concept builds a CodeableConcept from a CWE: the primary and alternate
// codings, and the original text (or the first display) as text.
func concept(c hl7v2.CWE) map[string]any {
	var codings []any
	if c.Identifier != "" {
		codings = append(codings, coding(c.Identifier, c.Text, c.CodingSystem))
	}
	if c.AltIdentifier != "" {
		codings = append(codings, coding(c.AltIdentifier, c.AltText, c.AltCodingSystem))
	}
	cc := map[string]any{}
	if len(codings) > 0 {
		cc["coding"] = codings
	}
	text := c.OriginalText
	if text == "" {
		text = c.Text
	}
	if text == "" {
		text = c.AltText
	}
	if text == "" && c.Identifier == "" && c.AltIdentifier == "" {
		return nil
	}
	if text != "" {
		cc["text"] = text
	}
	return cc
}

// v2Concept is a CodeableConcept with one code of an HL7 v2 table.
func v2Concept(table, code string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": sysV2Prefix + table, "code": code}}}
}
