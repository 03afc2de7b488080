package fhirstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"github.com/vigil-health/vigil/fhirpath"
)

// Indexer extracts the search index rows of a resource. It is called inside the write
// transaction, so the index always agrees with the stored resource.
type Indexer interface {
	Index(resourceType string, resource map[string]any) (*IndexRows, error)
}

// IndexRows are the rows one resource contributes to the index tables. Rows of a
// composite parameter are named "<code>$<component>" and share a non-zero Grp per
// element, so a query can pair components of the same element.
type IndexRows struct {
	Tokens     []TokenRow
	Strings    []StringRow
	References []ReferenceRow
	Dates      []DateRow
	Numbers    []NumberRow
	Quantities []QuantityRow
	URIs       []URIRow
}

// dateSpan is the span of the resource's "date" parameter: the earliest start and the
// latest end of its values; the whole time line when it has none (which narrows nothing).
// Reference rows carry it, so that patient-scoped date searches narrow within the
// reference index.
func (r *IndexRows) dateSpan() (low, high int64) {
	low, high = DateMax, DateMin
	for _, d := range r.Dates {
		if d.Param == "date" {
			low, high = min(low, d.Low), max(high, d.High)
		}
	}
	if low > high {
		return DateMin, DateMax
	}
	return low, high
}

func (r *IndexRows) empty() bool {
	return len(r.Tokens)+len(r.Strings)+len(r.References)+len(r.Dates)+len(r.Numbers)+len(r.Quantities)+len(r.URIs) == 0
}

// TokenRow is one token value: a Coding, an Identifier, a code, a boolean... Text is the
// normalised display (for :text). Identifier types are indexed as rows of the parameter
// "<code>:of-type" with the type's system and code and the identifier value in Text;
// Reference.identifier as rows of "<code>:identifier".
type TokenRow struct {
	Param  string
	System string
	Code   string
	Text   string
	Grp    int
}

// StringRow is one string value: Norm is lower case without accents (for the default
// starts-with and :contains matches), Exact the value as written (for :exact).
type StringRow struct {
	Param string
	Norm  string
	Exact string
	Grp   int
}

// ReferenceRow is one reference: the target type and id of a literal reference
// ("Patient/1", or the tail of an absolute one), the full URL of an absolute, logical or
// canonical reference, and the version when given.
type ReferenceRow struct {
	Param      string
	TargetType string
	TargetID   string
	URL        string
	Version    string
	Grp        int
}

// DateRow is the range of instants a date value covers, in Unix microseconds; open ends
// are DateMin and DateMax.
type DateRow struct {
	Param     string
	Low, High int64
	Grp       int
}

// Bounds of open date ranges, in Unix microseconds.
const (
	DateMin int64 = -(1 << 62)
	DateMax int64 = 1 << 62
)

// NumberRow is a number with the implicit range given by its significant digits.
type NumberRow struct {
	Param            string
	Value, Low, High float64
	Grp              int
}

// QuantityRow is a quantity (or Money, or one end of a Range) with its implicit range,
// and the canonical UCUM form (CCode, CValue...) when the unit converts to one.
type QuantityRow struct {
	Param               string
	Value, Low, High    float64
	System, Code, Unit  string
	CCode               string
	CValue, CLow, CHigh float64
	Grp                 int
}

// URIRow is one uri, url or canonical value.
type URIRow struct {
	Param string
	URI   string
	Grp   int
}

// IdentifierIndexer indexes only the top-level identifier element of every resource as the
// token parameter "identifier". It is the cheapest indexer, enough for conditional
// operations; SearchIndexer is the default.
type IdentifierIndexer struct{}

// Index implements Indexer.
func (IdentifierIndexer) Index(_ string, res map[string]any) (*IndexRows, error) {
	rows := &IndexRows{}
	add := func(v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		system, _ := m["system"].(string)
		value, _ := m["value"].(string)
		if value == "" {
			return
		}
		rows.Tokens = append(rows.Tokens, TokenRow{Param: "identifier", System: system, Code: value})
	}
	switch id := res["identifier"].(type) {
	case []any:
		for _, v := range id {
			add(v)
		}
	case map[string]any:
		add(id)
	}
	return rows, nil
}

// SearchIndexer extracts index rows for every search parameter of its Registry by
// evaluating the parameters' FHIRPath expressions.
type SearchIndexer struct {
	Registry *Registry
}

// NewSearchIndexer returns an indexer over the official R4 search parameters.
func NewSearchIndexer() (*SearchIndexer, error) {
	reg, err := NewRegistry()
	if err != nil {
		return nil, err
	}
	return &SearchIndexer{Registry: reg}, nil
}

// glucoseCodes are LOINC codes of glucose measurements, whose mg/dL and mmol/L values are
// converted into each other (1 mmol/L = 18.016 mg/dL).
var glucoseCodes = map[string]bool{
	"2339-0": true, "2345-7": true, "15074-8": true, "41653-7": true, "14743-9": true,
	"14749-6": true, "2340-8": true, "2341-6": true, "1547-9": true, "14770-2": true,
	"41652-9": true, "99504-3": true, "105272-9": true,
}

func isGlucose(res map[string]any) bool {
	code, _ := res["code"].(map[string]any)
	codings, _ := code["coding"].([]any)
	for _, c := range codings {
		m, _ := c.(map[string]any)
		if s, _ := m["code"].(string); glucoseCodes[s] {
			if sys, _ := m["system"].(string); sys == "" || sys == "http://loinc.org" {
				return true
			}
		}
	}
	return false
}

// Index implements Indexer. An expression that fails on the data (e.g. a singleton
// violation in unusual but stored content) is skipped rather than blocking the write.
func (x *SearchIndexer) Index(typ string, res map[string]any) (*IndexRows, error) {
	return x.index(typ, res, false)
}

// index extracts the rows; strict returns the first evaluation error instead of skipping.
func (x *SearchIndexer) index(typ string, res map[string]any, strict bool) (*IndexRows, error) {
	snap := x.Registry.snapshot()
	e := &extractor{rows: &IndexRows{}, glucose: typ == "Observation" && isGlucose(res)}
	env := &fhirpath.Env{Resource: res, RootResource: res}
	virtual := snap.virtual[typ]
	for _, p := range snap.params(typ) {
		if p.expr == nil || p.code == "_id" || p.code == "_lastUpdated" || !p.present(res) {
			continue
		}
		if _, ok := virtual[p.code]; ok {
			continue
		}
		vals, err := p.expr.Evaluate(res, env)
		if err != nil {
			if strict {
				return nil, fmt.Errorf("%s %s: %w", typ, p.code, err)
			}
			continue
		}
		if p.typ == ParamComposite {
		element:
			for _, v := range vals {
				// A composite matches only when every component has a value: skip
				// elements with a missing component (code-value-date of an Observation
				// with a valueQuantity).
				comps := make([]fhirpath.Collection, len(p.comps))
				for i, c := range p.comps {
					cv, err := c.expr.Evaluate(v, env)
					if err != nil {
						if strict {
							return nil, fmt.Errorf("%s %s component %d: %w", typ, p.code, i, err)
						}
						continue element
					}
					if len(cv) == 0 {
						continue element
					}
					comps[i] = cv
				}
				e.grp++
				for i, c := range p.comps {
					name := p.code + "$" + strconv.Itoa(i)
					for _, item := range comps[i] {
						e.add(name, c.typ, item, e.grp)
					}
				}
			}
			continue
		}
		for _, v := range vals {
			e.add(p.code, p.typ, v, 0)
		}
	}
	return e.rows, nil
}

type extractor struct {
	rows    *IndexRows
	grp     int
	glucose bool
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// add indexes one value of a parameter of type ptyp.
func (e *extractor) add(param, ptyp string, v fhirpath.Value, grp int) {
	data := v.Data()
	m, _ := data.(map[string]any)
	t := v.Type()
	switch ptyp {
	case ParamString:
		switch t {
		case "HumanName":
			for _, k := range []string{"family", "text"} {
				e.addString(param, str(m, k), grp)
			}
			for _, k := range []string{"given", "prefix", "suffix"} {
				for _, s := range stringList(m[k]) {
					e.addString(param, s, grp)
				}
			}
		case "Address":
			for _, k := range []string{"text", "city", "district", "state", "postalCode", "country"} {
				e.addString(param, str(m, k), grp)
			}
			for _, s := range stringList(m["line"]) {
				e.addString(param, s, grp)
			}
		default:
			if s, ok := primitiveString(data); ok {
				e.addString(param, s, grp)
			}
		}
	case ParamToken:
		e.addToken(param, t, data, grp)
	case ParamReference:
		e.addReference(param, t, data, grp)
	case ParamDate:
		e.addDate(param, t, data, grp)
	case ParamNumber:
		switch t {
		case "Range":
			lo, _ := m["low"].(map[string]any)
			hi, _ := m["high"].(map[string]any)
			l, okl := number(lo["value"])
			h, okh := number(hi["value"])
			if !okl {
				l = math.Inf(-1)
			}
			if !okh {
				h = math.Inf(1)
			}
			if okl || okh {
				e.rows.Numbers = append(e.rows.Numbers, NumberRow{Param: param, Value: (clampInf(l) + clampInf(h)) / 2, Low: clampInf(l), High: clampInf(h), Grp: grp})
			}
		case "Quantity", "Age", "Duration", "Count", "Distance", "SimpleQuantity":
			if s, ok := numberString(m["value"]); ok {
				e.addNumber(param, s, grp)
			}
		default:
			if s, ok := numberString(data); ok {
				e.addNumber(param, s, grp)
			}
		}
	case ParamQuantity:
		e.addQuantity(param, t, m, grp)
	case ParamURI:
		if s, ok := primitiveString(data); ok && s != "" {
			e.rows.URIs = append(e.rows.URIs, URIRow{Param: param, URI: s, Grp: grp})
		}
	}
}

func clampInf(f float64) float64 {
	if math.IsInf(f, 1) {
		return math.MaxFloat64
	}
	if math.IsInf(f, -1) {
		return -math.MaxFloat64
	}
	return f
}

func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, s := range x {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func primitiveString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

func (e *extractor) addString(param, s string, grp int) {
	if s == "" {
		return
	}
	if len(s) > 1000 {
		s = s[:1000]
	}
	e.rows.Strings = append(e.rows.Strings, StringRow{Param: param, Norm: NormalizeString(s), Exact: s, Grp: grp})
}

var accentStripper = runes.Remove(runes.In(unicode.Mn))

// NormalizeString lowers s and removes accents (é -> e), the form string search compares.
func NormalizeString(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	t := transform.Chain(norm.NFD, accentStripper, norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	return strings.ToLower(out)
}

func (e *extractor) addToken(param, t string, data any, grp int) {
	m, _ := data.(map[string]any)
	switch t {
	case "Coding":
		e.addCoding(param, m, "", grp)
	case "CodeableConcept":
		text := str(m, "text")
		codings, _ := m["coding"].([]any)
		for _, c := range codings {
			cm, _ := c.(map[string]any)
			e.addCoding(param, cm, text, grp)
		}
		if len(codings) == 0 && text != "" {
			e.rows.Tokens = append(e.rows.Tokens, TokenRow{Param: param, Text: NormalizeString(text), Grp: grp})
		}
	case "Identifier":
		value := str(m, "value")
		typ, _ := m["type"].(map[string]any)
		e.rows.Tokens = append(e.rows.Tokens, TokenRow{Param: param, System: str(m, "system"), Code: value, Text: NormalizeString(str(typ, "text")), Grp: grp})
		codings, _ := typ["coding"].([]any)
		for _, c := range codings {
			cm, _ := c.(map[string]any)
			e.rows.Tokens = append(e.rows.Tokens, TokenRow{Param: param + ":of-type", System: str(cm, "system"), Code: str(cm, "code"), Text: value, Grp: grp})
		}
	case "ContactPoint":
		if v := str(m, "value"); v != "" {
			e.rows.Tokens = append(e.rows.Tokens, TokenRow{Param: param, System: str(m, "system"), Code: v, Grp: grp})
		}
	case "Reference":
		// Some token parameters point at a Reference's identifier.
		if id, ok := m["identifier"].(map[string]any); ok {
			e.addToken(param, "Identifier", id, grp)
		}
	default:
		if s, ok := primitiveString(data); ok && s != "" {
			e.rows.Tokens = append(e.rows.Tokens, TokenRow{Param: param, Code: s, Grp: grp})
		}
	}
}

func (e *extractor) addCoding(param string, m map[string]any, text string, grp int) {
	if m == nil {
		return
	}
	display := str(m, "display")
	if text != "" {
		display = text + " " + display
	}
	code := str(m, "code")
	if code == "" && display == "" {
		return
	}
	e.rows.Tokens = append(e.rows.Tokens, TokenRow{Param: param, System: str(m, "system"), Code: code, Text: NormalizeString(strings.TrimSpace(display)), Grp: grp})
}

func (e *extractor) addReference(param, t string, data any, grp int) {
	switch t {
	case "Reference":
		m, _ := data.(map[string]any)
		if id, ok := m["identifier"].(map[string]any); ok {
			if v := str(id, "value"); v != "" {
				e.rows.Tokens = append(e.rows.Tokens, TokenRow{Param: param + ":identifier", System: str(id, "system"), Code: v, Grp: grp})
			}
		}
		ref := str(m, "reference")
		if ref == "" || strings.HasPrefix(ref, "#") {
			return
		}
		row := parseReference(ref)
		row.Param, row.Grp = param, grp
		e.rows.References = append(e.rows.References, row)
	default:
		// canonical, uri: a URL with an optional |version.
		s, ok := data.(string)
		if !ok || s == "" {
			return
		}
		row := ReferenceRow{Param: param, URL: s, Grp: grp}
		if i := strings.LastIndexByte(s, '|'); i >= 0 {
			row.URL, row.Version = s[:i], s[i+1:]
		}
		if tt, id, ok := tailTypeID(row.URL); ok {
			row.TargetType, row.TargetID = tt, id
		}
		e.rows.References = append(e.rows.References, row)
	}
}

// parseReference splits a literal reference into target type, id, version and URL.
func parseReference(ref string) ReferenceRow {
	row := ReferenceRow{}
	if strings.Contains(ref, ":") {
		row.URL = ref
	}
	path := ref
	if i := strings.Index(path, "/_history/"); i >= 0 {
		row.Version = path[i+len("/_history/"):]
		path = path[:i]
	}
	if tt, id, ok := tailTypeID(path); ok {
		row.TargetType, row.TargetID = tt, id
	} else if row.URL == "" {
		row.TargetID = path
	}
	return row
}

// tailTypeID returns Type and id from ".../Type/id" when they look like a FHIR type name
// and a FHIR id.
func tailTypeID(s string) (string, string, bool) {
	i := strings.LastIndexByte(s, '/')
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	id := s[i+1:]
	head := s[:i]
	j := strings.LastIndexByte(head, '/')
	tt := head[j+1:]
	if !isTypeName(tt) || !ValidID(id) || strings.ContainsAny(tt, ".:") {
		return "", "", false
	}
	return tt, id, true
}

func (e *extractor) addDate(param, t string, data any, grp int) {
	switch t {
	case "Period":
		m, _ := data.(map[string]any)
		low, high := DateMin, DateMax
		okAny := false
		if s := str(m, "start"); s != "" {
			if l, _, ok := ParseDateRange(s); ok {
				low, okAny = l, true
			}
		}
		if s := str(m, "end"); s != "" {
			if _, h, ok := ParseDateRange(s); ok {
				high, okAny = h, true
			}
		}
		if okAny {
			e.rows.Dates = append(e.rows.Dates, DateRow{Param: param, Low: low, High: high, Grp: grp})
		}
	case "Timing":
		m, _ := data.(map[string]any)
		low, high := DateMax, DateMin
		for _, s := range stringList(m["event"]) {
			if l, h, ok := ParseDateRange(s); ok {
				low, high = min(low, l), max(high, h)
			}
		}
		if rep, ok := m["repeat"].(map[string]any); ok {
			if b, ok := rep["boundsPeriod"].(map[string]any); ok {
				if s := str(b, "start"); s != "" {
					if l, _, ok := ParseDateRange(s); ok {
						low = min(low, l)
					}
				}
				if s := str(b, "end"); s != "" {
					if _, h, ok := ParseDateRange(s); ok {
						high = max(high, h)
					}
				} else if low != DateMax {
					high = DateMax
				}
			}
		}
		if low <= high {
			e.rows.Dates = append(e.rows.Dates, DateRow{Param: param, Low: low, High: high, Grp: grp})
		}
	default:
		s, ok := data.(string)
		if !ok {
			return
		}
		if l, h, ok := ParseDateRange(s); ok {
			e.rows.Dates = append(e.rows.Dates, DateRow{Param: param, Low: l, High: h, Grp: grp})
		}
	}
}

// ParseDateRange parses a FHIR date, dateTime or instant and returns the range of instants
// it covers in Unix microseconds (2020-03 covers all of March 2020). Values without a time
// zone are taken as UTC.
func ParseDateRange(s string) (low, high int64, ok bool) {
	lo, hi, ok := parseDateBounds(s)
	if !ok {
		return 0, 0, false
	}
	return lo.UnixMicro(), hi.UnixMicro(), true
}

func parseDateBounds(s string) (low, high time.Time, ok bool) {
	n := len(s)
	atoi := func(a string) (int, bool) {
		v, err := strconv.Atoi(a)
		return v, err == nil
	}
	switch {
	case n == 4:
		y, ok := atoi(s)
		if !ok {
			return low, high, false
		}
		low = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(1, 0, 0).Add(-time.Microsecond), true
	case n == 7 && s[4] == '-':
		y, ok1 := atoi(s[:4])
		mo, ok2 := atoi(s[5:])
		if !ok1 || !ok2 || mo < 1 || mo > 12 {
			return low, high, false
		}
		low = time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(0, 1, 0).Add(-time.Microsecond), true
	case n == 10:
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return low, high, false
		}
		return t, t.AddDate(0, 0, 1).Add(-time.Microsecond), true
	case n > 10 && s[10] == 'T':
		body := s[11:]
		// Split off the zone.
		zone := ""
		if strings.HasSuffix(body, "Z") {
			zone, body = "Z", body[:len(body)-1]
		} else if i := strings.LastIndexAny(body, "+-"); i >= 0 {
			zone, body = body[i:], body[:i]
		}
		var layout string
		var prec time.Duration
		switch {
		case len(body) == 5:
			layout, prec = "15:04", time.Minute
		case len(body) == 8:
			layout, prec = "15:04:05", time.Second
		case len(body) > 9 && body[8] == '.':
			frac := len(body) - 9
			layout = "15:04:05." + strings.Repeat("0", frac)
			prec = time.Duration(math.Pow10(9 - min(frac, 9)))
			if frac > 9 {
				return low, high, false
			}
		default:
			return low, high, false
		}
		loc := time.UTC
		if zone != "" && zone != "Z" {
			zt, err := time.Parse("-07:00", zone)
			if err != nil {
				return low, high, false
			}
			_, off := zt.Zone()
			loc = time.FixedZone("", off)
		}
		t, err := time.ParseInLocation("2006-01-02T"+layout, s[:11]+body, loc)
		if err != nil {
			return low, high, false
		}
		return t.UTC(), t.UTC().Add(prec - time.Nanosecond).Truncate(time.Microsecond), true
	}
	return low, high, false
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func numberString(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	}
	return "", false
}

// NumberRange returns the value of a decimal literal and its implicit range by
// significant digits: "100" covers [99.5, 100.5), "1.50" covers [1.495, 1.505), and, as
// search.html reads exponent forms, "1e2" covers [95, 105).
func NumberRange(s string) (value, low, high float64, err error) {
	value, err = strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(value, 0) || math.IsNaN(value) {
		return 0, 0, 0, fmt.Errorf("not a number: %q", s)
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp, _ = strconv.Atoi(s[i+1:])
		// search.html reads 1e2 as [95, 105): exponent forms get one more digit.
		exp--
	}
	decimals := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		decimals = len(mant) - i - 1
	}
	// The bounds are computed in exact decimal arithmetic and only then rounded to the
	// nearest float64, so that the upper bound of 0.8 is the float64 of 0.85 exactly: a
	// stored 0.85 then falls outside [0.75, 0.85) and inside ne0.8. Float arithmetic
	// (0.8 + 0.05) lands one ulp off either way.
	exact, ok := new(big.Rat), false
	if e := exp - decimals; e > -400 && e < 400 && len(s) < 400 {
		_, ok = exact.SetString(s)
	}
	if !ok {
		half := 0.5 * math.Pow10(exp-decimals)
		return value, value - half, value + half, nil
	}
	half := new(big.Rat).SetFrac64(1, 2)
	if e := exp - decimals; e >= 0 {
		half.Mul(half, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e)), nil)))
	} else {
		half.Quo(half, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-e)), nil)))
	}
	low, _ = new(big.Rat).Sub(exact, half).Float64()
	high, _ = new(big.Rat).Add(exact, half).Float64()
	return value, low, high, nil
}

func (e *extractor) addNumber(param, s string, grp int) {
	v, lo, hi, err := NumberRange(s)
	if err != nil {
		return
	}
	e.rows.Numbers = append(e.rows.Numbers, NumberRow{Param: param, Value: v, Low: lo, High: hi, Grp: grp})
}

func (e *extractor) addQuantity(param, t string, m map[string]any, grp int) {
	if m == nil {
		return
	}
	switch t {
	case "Range":
		lo, _ := m["low"].(map[string]any)
		hi, _ := m["high"].(map[string]any)
		e.addQuantity(param, "Quantity", lo, grp)
		e.addQuantity(param, "Quantity", hi, grp)
		return
	case "Money":
		s, ok := numberString(m["value"])
		if !ok {
			return
		}
		v, lo, hi, err := NumberRange(s)
		if err != nil {
			return
		}
		cur := str(m, "currency")
		e.rows.Quantities = append(e.rows.Quantities, QuantityRow{Param: param, Value: v, Low: lo, High: hi,
			System: "urn:iso:std:iso:4217", Code: cur, Unit: cur, Grp: grp})
		return
	}
	s, ok := numberString(m["value"])
	if !ok {
		return
	}
	v, lo, hi, err := NumberRange(s)
	if err != nil {
		return
	}
	row := QuantityRow{Param: param, Value: v, Low: lo, High: hi, System: str(m, "system"), Code: str(m, "code"), Unit: str(m, "unit"), Grp: grp}
	unit := row.Code
	if unit == "" {
		unit = row.Unit
	}
	if row.System == "" || row.System == UCUMSystem {
		if c, ok := CanonicalUnit(unit); ok {
			row.CCode = c.Code
			row.CValue, row.CLow, row.CHigh = c.Convert(v), c.Convert(lo), c.Convert(hi)
			e.rows.Quantities = append(e.rows.Quantities, row)
			if e.glucose {
				// Glucose in mg/dL and mmol/L convert into each other: index the other
				// canonical form too, so a search in either unit finds both.
				if alt, ok := glucoseAlternate(c.Code); ok {
					r2 := row
					r2.CCode = alt.Code
					r2.CValue, r2.CLow, r2.CHigh = alt.Convert(row.CValue), alt.Convert(row.CLow), alt.Convert(row.CHigh)
					e.rows.Quantities = append(e.rows.Quantities, r2)
				}
			}
			return
		}
	}
	e.rows.Quantities = append(e.rows.Quantities, row)
}

// indexTables lists the index tables (all keyed by rid).
var indexTables = []string{"idx_token", "idx_string", "idx_reference", "idx_date", "idx_number", "idx_quantity", "idx_uri"}

func (tx *Tx) reindex(ctx context.Context, rid int64, r *Resource, body map[string]any) error {
	// A first version has a fresh rid: there is nothing to clear. Deletion cleared the
	// rows of a re-created resource already.
	var stale [][3]string
	if r.Version > 1 {
		var err error
		if stale, err = tx.clearIndexRows(ctx, rid); err != nil {
			return fmt.Errorf("fhirstore: clear index %s/%s: %w", r.Type, r.ID, err)
		}
	}
	if !r.Deleted && body != nil {
		rows, err := tx.s.indexer.Index(r.Type, body)
		if err != nil {
			return fmt.Errorf("fhirstore: index %s/%s: %w", r.Type, r.ID, err)
		}
		if rows != nil && !rows.empty() {
			if err := tx.writeIndexRows(ctx, rid, r.Type, rows); err != nil {
				return fmt.Errorf("fhirstore: write index %s/%s: %w", r.Type, r.ID, err)
			}
		}
	}
	// The latest Observations this one was: now another one may be.
	return tx.recomputeLatest(ctx, stale)
}

// maxInsertArgs keeps one INSERT below the placeholder limits of both backends.
const maxInsertArgs = 30000

// insertSQL returns the text of an n-row INSERT.
func insertSQL(table, cols string, width, n int) string {
	var b strings.Builder
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	b.Grow(32 + len(table) + len(cols) + n*(len(one)+2))
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	b.WriteString(cols)
	b.WriteString(") VALUES ")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}

// insertRows writes the rows of in with one multi-row INSERT (split only when the
// placeholders would exceed maxInsertArgs).
func (tx *Tx) insertRows(ctx context.Context, in indexInsert) error {
	if in.n == 0 {
		return nil
	}
	per := maxInsertArgs / in.width
	for start := 0; start < in.n; start += per {
		end := min(in.n, start+per)
		args := make([]any, 0, (end-start)*in.width)
		for i := start; i < end; i++ {
			args = in.row(i, args)
		}
		if _, err := tx.exec(ctx, insertSQL(in.table, in.cols, in.width, end-start)+in.suffix, args...); err != nil {
			return fmt.Errorf("%s: %w", in.table, err)
		}
	}
	return nil
}

// indexInsert is the rows one resource (or several, merged) adds to one table; suffix
// follows the VALUES (an ON CONFLICT clause).
type indexInsert struct {
	table, cols, suffix string
	width, n            int
	row                 func(i int, args []any) []any
}

func indexInserts(rid int64, typ string, rows *IndexRows) []indexInsert {
	dlow, dhigh := rows.dateSpan()
	return []indexInsert{
		{"idx_token", "rid, type, param, system, code, text, grp", "", 7, len(rows.Tokens), func(i int, a []any) []any {
			t := rows.Tokens[i]
			return append(a, rid, typ, t.Param, t.System, t.Code, t.Text, t.Grp)
		}},
		{"idx_string", "rid, type, param, norm, exact, grp", "", 6, len(rows.Strings), func(i int, a []any) []any {
			t := rows.Strings[i]
			return append(a, rid, typ, t.Param, t.Norm, t.Exact, t.Grp)
		}},
		{"idx_reference", "rid, type, param, target_type, target_id, url, version, grp, dlow, dhigh", "", 10, len(rows.References), func(i int, a []any) []any {
			t := rows.References[i]
			return append(a, rid, typ, t.Param, t.TargetType, t.TargetID, t.URL, t.Version, t.Grp, dlow, dhigh)
		}},
		{"idx_date", "rid, type, param, low, high, grp", "", 6, len(rows.Dates), func(i int, a []any) []any {
			t := rows.Dates[i]
			return append(a, rid, typ, t.Param, t.Low, t.High, t.Grp)
		}},
		{"idx_number", "rid, type, param, value, low, high, grp", "", 7, len(rows.Numbers), func(i int, a []any) []any {
			t := rows.Numbers[i]
			return append(a, rid, typ, t.Param, t.Value, t.Low, t.High, t.Grp)
		}},
		{"idx_quantity", "rid, type, param, value, low, high, system, code, unit, ccode, cvalue, clow, chigh, grp", "", 14, len(rows.Quantities), func(i int, a []any) []any {
			t := rows.Quantities[i]
			return append(a, rid, typ, t.Param, t.Value, t.Low, t.High, t.System, t.Code, t.Unit, t.CCode, t.CValue, t.CLow, t.CHigh, t.Grp)
		}},
		{"idx_uri", "rid, type, param, uri, grp", "", 5, len(rows.URIs), func(i int, a []any) []any {
			t := rows.URIs[i]
			return append(a, rid, typ, t.Param, t.URI, t.Grp)
		}},
	}
}

func (tx *Tx) writeIndexRows(ctx context.Context, rid int64, typ string, rows *IndexRows) error {
	return tx.insertIndex(ctx, append(indexInserts(rid, typ, rows), latestInsert(latestRows(rid, typ, rows))))
}

// insertIndex writes index rows, of one resource or merged from several (CreateMany):
// one statement on PostgreSQL, a multi-row INSERT per table on SQLite.
func (tx *Tx) insertIndex(ctx context.Context, ins []indexInsert) error {
	if tx.s.d.name() == "postgres" {
		return tx.pgInsertIndex(ctx, ins)
	}
	for _, in := range ins {
		if err := tx.insertRows(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// clearIndexRows deletes the index rows of rids (one round trip on PostgreSQL) and
// returns the obs_latest keys that pointed to them, for recomputeLatest.
func (tx *Tx) clearIndexRows(ctx context.Context, rids ...int64) ([][3]string, error) {
	in := placeholders(len(rids))
	ridArgs := make([]any, len(rids))
	for i, r := range rids {
		ridArgs[i] = r
	}
	latest := "DELETE FROM obs_latest WHERE rid IN (" + in + ") RETURNING patient, system, code"
	var q string
	var args []any
	if tx.s.d.name() == "postgres" {
		var b strings.Builder
		for k, t := range indexTables {
			if k == 0 {
				b.WriteString("WITH ")
			} else {
				b.WriteString(", ")
			}
			b.WriteString("d" + strconv.Itoa(k) + " AS (DELETE FROM " + t + " WHERE rid IN (" + in + "))")
			args = append(args, ridArgs...)
		}
		q = b.String() + " " + latest
	} else {
		for _, t := range indexTables {
			if _, err := tx.exec(ctx, `DELETE FROM `+t+` WHERE rid IN (`+in+`)`, ridArgs...); err != nil {
				return nil, err
			}
		}
		q = latest
	}
	rows, err := tx.query(ctx, q, append(args, ridArgs...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys [][3]string
	for rows.Next() {
		var k [3]string
		if err := rows.Scan(&k[0], &k[1], &k[2]); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}
