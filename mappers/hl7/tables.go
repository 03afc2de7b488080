package hl7map

import (
	"net/url"
	"strings"

	"github.com/vigil-health/vigil/mappers/codes"
)

// FHIR code systems of HL7 v2 and v3 tables.
const (
	sysV2Prefix           = "http://terminology.hl7.org/CodeSystem/v2-"
	sysIdentifierType     = sysV2Prefix + "0203"
	sysActCode            = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	sysParticipationType  = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	sysInterpretation     = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	sysDiagnosticService  = sysV2Prefix + "0074"
	sysSNOMED             = "http://snomed.info/sct"
	vigilHL7Prefix        = "urn:vigil:hl7:"
	vigilCodeSystemPrefix = "urn:vigil:hl7:codesystem:"
	// ObservationIdentifierSystem is the system of the identifier given to
	// Observations of laboratory OBX rows: a hash of the order (filler or
	// placer number), the OBX-3 code and the OBX-4 sub-id.
	ObservationIdentifierSystem = "urn:vigil:hl7:obx"
)

// codeSystems maps HL7 table 0396 coding system names to FHIR URIs.
var codeSystems = map[string]string{
	"LN":     codes.SystemLOINC,
	"SCT":    sysSNOMED,
	"SNM":    sysSNOMED,
	"SNM3":   sysSNOMED,
	"UCUM":   codes.SystemUCUM,
	"MDC":    codes.SystemMDC,
	"I10":    "http://hl7.org/fhir/sid/icd-10",
	"I10C":   "http://hl7.org/fhir/sid/icd-10-cm",
	"I9C":    "http://hl7.org/fhir/sid/icd-9-cm",
	"CPT":    "http://www.ama-assn.org/go/cpt",
	"RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
	"NDC":    "http://hl7.org/fhir/sid/ndc",
	"CVX":    "http://hl7.org/fhir/sid/cvx",
	"ISO639": "urn:ietf:bcp:47",
	// Vigil's alert codes, in outbound alert rows.
	alertSystemName: alertSystem,
}

// systemOf returns the FHIR URI of an HL7 coding system name: the
// well-known ones, HL7nnnn tables, and urn:vigil:hl7:codesystem:<name> for
// local systems. "" stays "".
func systemOf(name string) string {
	if name == "" {
		return ""
	}
	if s, ok := codeSystems[strings.ToUpper(name)]; ok {
		return s
	}
	if len(name) == 7 && strings.HasPrefix(strings.ToUpper(name), "HL7") && isDigits(name[3:]) {
		return sysV2Prefix + name[3:]
	}
	return vigilCodeSystemPrefix + urnEscape(name)
}

// systemName is the reverse of systemOf, for outbound messages.
func systemName(uri string) string {
	switch uri {
	case codes.SystemLOINC:
		return "LN"
	case sysSNOMED:
		return "SCT"
	case codes.SystemUCUM:
		return "UCUM"
	case codes.SystemMDC:
		return "MDC"
	}
	for k, v := range codeSystems {
		if v == uri && k != "SNM" && k != "SNM3" {
			return k
		}
	}
	if rest, ok := strings.CutPrefix(uri, vigilCodeSystemPrefix); ok {
		if s, err := url.PathUnescape(rest); err == nil {
			return s
		}
	}
	if rest, ok := strings.CutPrefix(uri, sysV2Prefix); ok && len(rest) == 4 {
		return "HL7" + rest
	}
	return "L"
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// urnEscape percent-encodes what may not appear in a URN's specific string.
func urnEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~!$'()*+,;=:@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%")
		b.WriteByte("0123456789ABCDEF"[c>>4])
		b.WriteByte("0123456789ABCDEF"[c&15])
	}
	return b.String()
}

// administrativeGender maps HL7 table 0001 to FHIR administrative-gender
// (as the v2-to-FHIR ConceptMap does).
var administrativeGender = map[string]string{
	"F": "female", "M": "male", "O": "other", "U": "unknown", "A": "other", "N": "other",
}

// genderCode is the reverse of administrativeGender.
var genderCode = map[string]string{"female": "F", "male": "M", "other": "O", "unknown": "U"}

// nameUse maps HL7 table 0200 (name type) to FHIR name-use.
var nameUse = map[string]string{
	"L": "official", "D": "usual", "A": "usual", "M": "maiden", "N": "nickname", "S": "anonymous", "T": "temp", "C": "old", "B": "old",
}

// nameTypeCode is the reverse of nameUse for outbound PID-5.7.
var nameTypeCode = map[string]string{
	"official": "L", "usual": "D", "maiden": "M", "nickname": "N", "anonymous": "S", "temp": "T", "old": "C",
}

// addressUse maps HL7 table 0190 (address type) to FHIR address-use.
var addressUse = map[string]string{
	"H": "home", "B": "work", "O": "work", "C": "temp", "BA": "old",
}

// telecomUse maps HL7 table 0201 to FHIR contact-point-use and table 0202
// to contact-point-system.
var (
	telecomUse = map[string]string{
		"PRN": "home", "ORN": "home", "VHN": "home", "WPN": "work", "PRS": "mobile", "EMR": "temp",
	}
	telecomSystem = map[string]string{
		"PH": "phone", "CP": "phone", "FX": "fax", "INTERNET": "email", "X.400": "email", "BP": "pager", "MD": "other", "TDD": "other", "TTY": "other",
	}
)

// encounterClass maps HL7 table 0004 (patient class) to v3 ActCode.
var encounterClass = map[string][2]string{
	"E": {"EMER", "emergency"},
	"I": {"IMP", "inpatient encounter"},
	"O": {"AMB", "ambulatory"},
	"P": {"PRENC", "pre-admission"},
	"R": {"AMB", "ambulatory"},
	"B": {"IMP", "inpatient encounter"},
}

// observationStatus maps HL7 table 0085 (OBX-11) to FHIR observation-status,
// after the v2-to-FHIR ConceptMap: R (entered, not verified) and S
// (partial) are preliminary, C is corrected (a kind of amended), D and W
// are entered-in-error, I and O registered, N (not asked) and X cancelled.
var observationStatus = map[string]string{
	"A": "amended", "B": "amended", "C": "corrected", "D": "entered-in-error",
	"F": "final", "I": "registered", "N": "cancelled", "O": "registered",
	"P": "preliminary", "R": "preliminary", "S": "preliminary", "U": "final",
	"V": "final", "W": "entered-in-error", "X": "cancelled",
}

// resultStatusCode is the table 0085 code written for an observation status.
// HL7 v2.6 has no A (amended, v2.8), so amended is sent as C.
var resultStatusCode = map[string]string{
	"final": "F", "preliminary": "P", "amended": "C", "corrected": "C",
	"entered-in-error": "W", "cancelled": "X", "registered": "I",
}

// reportStatus maps HL7 table 0123 (OBR-25) to FHIR diagnostic-report-status.
var reportStatus = map[string]string{
	"O": "registered", "I": "registered", "S": "registered", "A": "partial",
	"P": "preliminary", "C": "corrected", "R": "partial", "F": "final",
	"X": "cancelled", "Y": "registered", "Z": "registered",
}

// interpretations are the table 0078 codes that v3 ObservationInterpretation
// shares, with their v3 display.
var interpretations = map[string]string{
	"L": "Low", "H": "High", "LL": "Critical low", "HH": "Critical high",
	"N": "Normal", "A": "Abnormal", "AA": "Critical abnormal",
	"<": "Off scale low", ">": "Off scale high", "U": "Significant change up",
	"D": "Significant change down", "B": "Better", "W": "Worse",
	"S": "Susceptible", "R": "Resistant", "I": "Intermediate",
	"MS": "moderately susceptible", "VS": "very susceptible",
	"POS": "Positive", "NEG": "Negative", "IND": "Indeterminate",
	"DET": "Detected", "ND": "Not detected", "E": "Equivocal",
	"EX": "outside threshold", "HX": "above high threshold", "LX": "below low threshold",
	"HU": "Significantly high", "LU": "Significantly low", "NR": "Non-reactive", "RR": "Reactive",
}
