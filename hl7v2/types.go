package hl7v2

import (
	"strconv"
	"strings"
)

// HD is a hierarchic designator: namespace ID, universal ID, universal ID type.
type HD struct {
	NamespaceID     string
	UniversalID     string
	UniversalIDType string
}

// EI is an entity identifier, such as OBX-18 (equipment instance identifier, an EUI-64 in
// PCD-01).
type EI struct {
	EntityIdentifier string
	NamespaceID      string
	UniversalID      string
	UniversalIDType  string
}

// CWE is a coded value with exceptions (CE is its first six components).
type CWE struct {
	Identifier             string
	Text                   string
	CodingSystem           string
	AltIdentifier          string
	AltText                string
	AltCodingSystem        string
	CodingSystemVersion    string
	AltCodingSystemVersion string
	OriginalText           string
}

// CX is an extended composite identifier, such as PID-3.
type CX struct {
	ID                 string
	CheckDigit         string
	CheckDigitScheme   string
	AssigningAuthority HD
	IdentifierTypeCode string
	AssigningFacility  HD
}

// XPN is an extended person name.
type XPN struct {
	FamilyName   string // FN.1, surname
	GivenName    string
	MiddleName   string // second and further given names or initials
	Suffix       string
	Prefix       string
	Degree       string
	NameTypeCode string
}

// XAD is an extended address.
type XAD struct {
	Street           string // SAD.1, street or mailing address
	OtherDesignation string
	City             string
	State            string
	Zip              string
	Country          string
	AddressType      string
	OtherGeographic  string
	County           string
	CensusTract      string
}

// MSG is a message type (MSH-9): code, trigger event, message structure.
type MSG struct {
	Code      string
	Trigger   string
	Structure string
}

// PT is a processing type (MSH-11): processing ID (table 0103) and mode (table 0207).
type PT struct {
	ProcessingID   string
	ProcessingMode string
}

// VID is a version identifier (MSH-12).
type VID struct {
	VersionID            string
	Internationalization CWE
	InternationalVersion CWE
}

// NM is a number kept as its exact decimal text, such as "98.60" (not 98.6).
type NM struct {
	Text string
}

// IsEmpty reports whether the number is absent.
func (n NM) IsEmpty() bool { return n.Text == "" }

// Float64 returns the number as a float64 (0 when absent).
func (n NM) Float64() float64 {
	f, _ := strconv.ParseFloat(n.Text, 64)
	return f
}

// String returns the decimal text.
func (n NM) String() string { return n.Text }

// ParseNM checks that s is an HL7 number: an optional sign, digits and at most one decimal
// point. Surrounding spaces are dropped; "" gives an empty NM.
func ParseNM(s string) (NM, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return NM{}, nil
	}
	body := s
	if body[0] == '+' || body[0] == '-' {
		body = body[1:]
	}
	digits, dots := 0, 0
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return NM{}, newError(CodeDataType, Location{}, "not a number (NM)")
		}
	}
	if digits == 0 || dots > 1 {
		return NM{}, newError(CodeDataType, Location{}, "not a number (NM)")
	}
	return NM{Text: s}, nil
}

// SN is a structured numeric: comparator, first number, separator or suffix, second number,
// as in ">^100", "^10^-^20" or "^1^:^128".
type SN struct {
	Comparator string // "", ">", "<", ">=", "<=", "=" or "<>"
	Num1       NM
	Separator  string // "", "-", "+", "/", "." or ":"
	Num2       NM
}

// CQ is a composite quantity with units.
type CQ struct {
	Quantity NM
	Units    CWE
}

func typeError(loc Location, msg string) *Error { return newError(CodeDataType, loc, msg) }

func (r Repetition) get(i int) string { return r.Component(i).Value() }
func (c Component) get(i int) string  { return c.Sub(i).Value() }

// fill decodes the first n parts of n (components of a repetition, subcomponents of a
// component) into dst in one pass; for components, each part's first subcomponent.
func (n node) fill(dst []string) {
	if n.lit {
		dst[0] = n.raw
		return
	}
	d := n.delims()
	sep := d.Component
	if n.level == levelComp {
		sep = d.Subcomponent
	}
	s := n.raw
	for i := range dst {
		j := strings.IndexByte(s, sep)
		part := s
		if j >= 0 {
			part, s = s[:j], s[j+1:]
		}
		if n.level == levelRep {
			part = piece(part, d.Subcomponent, 1)
		}
		if part != `""` {
			dst[i] = n.decode(part)
		}
		if j < 0 {
			return
		}
	}
}

func hd(p []string) HD   { return HD{p[0], p[1], p[2]} }
func ei(p []string) EI   { return EI{p[0], p[1], p[2], p[3]} }
func cwe(p []string) CWE { return CWE{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]} }

// HD reads the repetition as an HD.
func (r Repetition) HD() HD {
	var p [3]string
	r.fill(p[:])
	return hd(p[:])
}

// HD reads the component's subcomponents as an HD (as in CX-4).
func (c Component) HD() HD {
	var p [3]string
	c.fill(p[:])
	return hd(p[:])
}

// EI reads the repetition as an EI.
func (r Repetition) EI() EI {
	var p [4]string
	r.fill(p[:])
	return ei(p[:])
}

// EI reads the component's subcomponents as an EI (as in EIP).
func (c Component) EI() EI {
	var p [4]string
	c.fill(p[:])
	return ei(p[:])
}

// CWE reads the repetition as a CWE (or CE).
func (r Repetition) CWE() CWE {
	var p [9]string
	r.fill(p[:])
	return cwe(p[:])
}

// CWE reads the component's subcomponents as a CWE (as in CQ-2).
func (c Component) CWE() CWE {
	var p [9]string
	c.fill(p[:])
	return cwe(p[:])
}

// CX reads the repetition as a CX.
func (r Repetition) CX() CX {
	return CX{
		ID: r.get(1), CheckDigit: r.get(2), CheckDigitScheme: r.get(3),
		AssigningAuthority: r.Component(4).HD(), IdentifierTypeCode: r.get(5),
		AssigningFacility: r.Component(6).HD(),
	}
}

// XPN reads the repetition as an XPN.
func (r Repetition) XPN() XPN {
	var p [7]string
	r.fill(p[:])
	return XPN{p[0], p[1], p[2], p[3], p[4], p[5], p[6]}
}

// XAD reads the repetition as an XAD.
func (r Repetition) XAD() XAD {
	var p [10]string
	r.fill(p[:])
	return XAD{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]}
}

// MSG reads the repetition as an MSG.
func (r Repetition) MSG() MSG {
	var p [3]string
	r.fill(p[:])
	return MSG{p[0], p[1], p[2]}
}

// PT reads the repetition as a PT.
func (r Repetition) PT() PT { return PT{r.get(1), r.get(2)} }

// VID reads the repetition as a VID.
func (r Repetition) VID() VID {
	return VID{VersionID: r.get(1), Internationalization: r.Component(2).CWE(), InternationalVersion: r.Component(3).CWE()}
}

// NM reads the first component as a number; a malformed one is a 102 error at its location.
func (r Repetition) NM() (NM, error) {
	n, err := ParseNM(r.get(1))
	if err != nil {
		return NM{}, typeError(r.Component(1).loc, "not a number (NM)")
	}
	return n, nil
}

// SN reads the repetition as a structured numeric.
func (r Repetition) SN() (SN, error) {
	sn := SN{Comparator: r.get(1), Separator: r.get(3)}
	switch sn.Comparator {
	case "", ">", "<", ">=", "<=", "=", "<>":
	default:
		return SN{}, typeError(r.Component(1).loc, "unknown SN comparator")
	}
	switch sn.Separator {
	case "", "-", "+", "/", ".", ":":
	default:
		return SN{}, typeError(r.Component(3).loc, "unknown SN separator")
	}
	var err error
	if sn.Num1, err = ParseNM(r.get(2)); err != nil {
		return SN{}, typeError(r.Component(2).loc, "SN first number is not a number")
	}
	if sn.Num2, err = ParseNM(r.get(4)); err != nil {
		return SN{}, typeError(r.Component(4).loc, "SN second number is not a number")
	}
	return sn, nil
}

// CQ reads the repetition as a composite quantity.
func (r Repetition) CQ() (CQ, error) {
	q, err := ParseNM(r.get(1))
	if err != nil {
		return CQ{}, typeError(r.Component(1).loc, "CQ quantity is not a number")
	}
	return CQ{Quantity: q, Units: r.Component(2).CWE()}, nil
}

// TS reads the first component (a DTM) of a TS, or a DTM field.
func (r Repetition) TS() (DTM, error) {
	t, err := ParseDTM(r.get(1))
	if err != nil {
		return DTM{}, &Error{Code: CodeDataType, Severity: SeverityError, Location: r.Component(1).loc, Message: "not a date/time (DTM)", Err: err}
	}
	return t, nil
}

// DTM reads the component as a DTM.
func (c Component) DTM() (DTM, error) {
	t, err := ParseDTM(c.get(1))
	if err != nil {
		return DTM{}, &Error{Code: CodeDataType, Severity: SeverityError, Location: c.loc, Message: "not a date/time (DTM)", Err: err}
	}
	return t, nil
}

// NM reads the component as a number.
func (c Component) NM() (NM, error) {
	n, err := ParseNM(c.get(1))
	if err != nil {
		return NM{}, typeError(c.loc, "not a number (NM)")
	}
	return n, nil
}

// The Field methods read the first repetition.

// HD reads the first repetition as an HD.
func (f Field) HD() HD { return f.Rep(1).HD() }

// EI reads the first repetition as an EI.
func (f Field) EI() EI { return f.Rep(1).EI() }

// CWE reads the first repetition as a CWE.
func (f Field) CWE() CWE { return f.Rep(1).CWE() }

// CX reads the first repetition as a CX.
func (f Field) CX() CX { return f.Rep(1).CX() }

// XPN reads the first repetition as an XPN.
func (f Field) XPN() XPN { return f.Rep(1).XPN() }

// XAD reads the first repetition as an XAD.
func (f Field) XAD() XAD { return f.Rep(1).XAD() }

// MSG reads the field as an MSG.
func (f Field) MSG() MSG { return f.Rep(1).MSG() }

// PT reads the field as a PT.
func (f Field) PT() PT { return f.Rep(1).PT() }

// VID reads the field as a VID.
func (f Field) VID() VID { return f.Rep(1).VID() }

// NM reads the first repetition as a number.
func (f Field) NM() (NM, error) { return f.Rep(1).NM() }

// SN reads the first repetition as a structured numeric.
func (f Field) SN() (SN, error) { return f.Rep(1).SN() }

// CQ reads the first repetition as a composite quantity.
func (f Field) CQ() (CQ, error) { return f.Rep(1).CQ() }

// TS reads the first repetition as a TS.
func (f Field) TS() (DTM, error) { return f.Rep(1).TS() }
