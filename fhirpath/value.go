package fhirpath

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// System type names as reported by Value.Type.
const (
	TypeBoolean  = "System.Boolean"
	TypeString   = "System.String"
	TypeInteger  = "System.Integer"
	TypeDecimal  = "System.Decimal"
	TypeDate     = "System.Date"
	TypeDateTime = "System.DateTime"
	TypeTime     = "System.Time"
	TypeQuantity = "System.Quantity"
	// typeTypeInfo is the type of the result of type().
	typeTypeInfo = "System.TypeInfo"
)

// Value is one item of a Collection: either a node of the input JSON tree
// (with its FHIR type and its location) or a value computed by the expression
// (with a System type).
type Value struct {
	data   any
	typ    string
	td     *typeDef // the model entry of typ when known at navigation; nil: look it up
	parent *Value   // the item this one was navigated from, if any
	key    string   // the JSON key in parent's map
	index  int      // the position in the JSON array under key, or -1
}

// Collection is the result of a FHIRPath expression: an ordered list of items.
type Collection []Value

// NewValue wraps a JSON node or a Go value as a Value. Maps with a
// resourceType are typed as that resource; other Go values get their System
// type (bool, string, int/int64, float64, json.Number, Decimal, Temporal,
// Quantity).
func NewValue(data any) Value {
	return Value{data: data, typ: inferType(data), index: -1}
}

// inferType guesses the type of a node that has no model information.
func inferType(data any) string {
	switch d := data.(type) {
	case map[string]any:
		if rt, ok := d["resourceType"].(string); ok {
			return rt
		}
		return ""
	case bool:
		return TypeBoolean
	case string:
		return TypeString
	case int, int64, int32:
		return TypeInteger
	case float64, float32:
		return TypeDecimal
	case json.Number:
		if strings.ContainsAny(string(d), ".eE") {
			return TypeDecimal
		}
		return TypeInteger
	case Decimal:
		return TypeDecimal
	case Temporal:
		switch d.kind {
		case kindDate:
			return TypeDate
		case kindTime:
			return TypeTime
		}
		return TypeDateTime
	case Quantity:
		return TypeQuantity
	}
	return ""
}

// Type returns the type of the item: a FHIR type name from the R4 model
// ("Quantity", "code", "Observation", "Observation.component") for nodes of
// the input, or a System type name ("System.String", ...) for computed values.
// It is "" for JSON whose type is unknown.
func (v Value) Type() string { return v.typ }

// Data returns the underlying JSON node (map[string]any, []any items, string,
// json.Number, bool; nil for a primitive that has only extensions) or, for
// computed values, the Go value: bool, string, int64, Decimal, Temporal,
// Quantity, or map[string]any for type() results.
func (v Value) Data() any { return v.data }

// Parent returns the item this one was navigated from (nil at the root).
func (v Value) Parent() *Value { return v.parent }

// Key returns the JSON property name under which the item lives in its
// parent ("" at the root and for computed values).
func (v Value) Key() string { return v.key }

// Index returns the position of the item in its JSON array, or -1 when the
// property is not an array.
func (v Value) Index() int { return v.index }

// Path returns the location of the item in the input, for example
// "Observation.component[1].code". Computed values return "".
func (v Value) Path() string {
	if v.parent == nil {
		if v.key != "" {
			return ""
		}
		if isSystemType(v.typ) {
			return ""
		}
		return v.typ
	}
	var parts []*Value
	for p := &v; p != nil; p = p.parent {
		parts = append(parts, p)
	}
	var b strings.Builder
	root := parts[len(parts)-1]
	b.WriteString(root.typ)
	for i := len(parts) - 2; i >= 0; i-- {
		p := parts[i]
		b.WriteByte('.')
		b.WriteString(p.key)
		if p.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// String renders the item the way toString() does, or as JSON for complex
// nodes.
func (v Value) String() string {
	if s, ok := v.toStringValue(); ok {
		return s
	}
	b, err := json.Marshal(v.data)
	if err != nil {
		return fmt.Sprintf("%v", v.data)
	}
	return string(b)
}

// Bool applies the singleton evaluation of collections rules for a boolean
// context: an empty collection gives ok=false; a single boolean gives its
// value; any other single item gives true; more than one item gives ok=false.
func (c Collection) Bool() (value, ok bool) {
	if len(c) != 1 {
		return false, false
	}
	if b, isBool := c[0].boolValue(); isBool {
		return b, true
	}
	return true, true
}

// String renders the collection as a bracketed, comma-separated list.
func (c Collection) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range c {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v.String())
	}
	b.WriteByte(']')
	return b.String()
}

// Strings returns the string form of every item.
func (c Collection) Strings() []string {
	out := make([]string, len(c))
	for i, v := range c {
		out[i] = v.String()
	}
	return out
}

func isSystemType(t string) bool { return strings.HasPrefix(t, "System.") }

// boolValue returns the item as a boolean if it is one.
func (v Value) boolValue() (bool, bool) {
	b, ok := v.data.(bool)
	return b, ok
}

// fhirStringTypes are the FHIR primitives that convert to System.String.
var fhirStringTypes = map[string]bool{
	"string": true, "code": true, "id": true, "uri": true, "url": true, "canonical": true,
	"markdown": true, "oid": true, "uuid": true, "base64Binary": true, "xhtml": true,
}

// sysKind classifies the System type an item converts to implicitly.
type sysKind uint8

const (
	sysNone sysKind = iota
	sysBoolean
	sysString
	sysInteger
	sysDecimal
	sysDate
	sysDateTime
	sysTime
	sysQuantity
)

// kindOf returns the System type an item converts to implicitly.
func (v Value) kindOf() sysKind {
	switch v.typ {
	case TypeBoolean, "boolean":
		return sysBoolean
	case TypeString:
		return sysString
	case TypeInteger, "integer", "positiveInt", "unsignedInt":
		return sysInteger
	case TypeDecimal, "decimal":
		return sysDecimal
	case TypeDate, "date":
		return sysDate
	case TypeDateTime, "dateTime", "instant":
		return sysDateTime
	case TypeTime, "time":
		return sysTime
	case TypeQuantity:
		return sysQuantity
	case "Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity":
		if _, ok := v.data.(map[string]any); ok {
			return sysQuantity
		}
		return sysNone
	}
	if fhirStringTypes[v.typ] {
		return sysString
	}
	if v.typ == "" {
		switch v.data.(type) {
		case string:
			return sysString
		case bool:
			return sysBoolean
		case json.Number, float64:
			return sysDecimal
		}
	}
	return sysNone
}

// toStringValue returns the item as a string if it is primitive.
func (v Value) toStringValue() (string, bool) {
	switch d := v.data.(type) {
	case string:
		return d, true
	case bool:
		if d {
			return "true", true
		}
		return "false", true
	case json.Number:
		return string(d), true
	case int64:
		return strconv.FormatInt(d, 10), true
	case int:
		return strconv.Itoa(d), true
	case float64:
		return strconv.FormatFloat(d, 'f', -1, 64), true
	case Decimal:
		return d.String(), true
	case Temporal:
		return d.String(), true
	case Quantity:
		return d.String(), true
	case map[string]any:
		if v.kindOf() == sysQuantity {
			if q, ok := v.quantity(); ok {
				return q.String(), true
			}
		}
	}
	return "", false
}

// integer returns the item as an int64 if it is an integer.
func (v Value) integer() (int64, bool) {
	switch d := v.data.(type) {
	case int64:
		return d, true
	case int:
		return int64(d), true
	case json.Number:
		if v.kindOf() != sysInteger {
			return 0, false
		}
		n, err := strconv.ParseInt(string(d), 10, 64)
		return n, err == nil
	case float64:
		if v.kindOf() == sysInteger {
			return int64(d), true
		}
	}
	return 0, false
}

// decimal returns the item as a Decimal if it is numeric (integers promote).
func (v Value) decimal() (Decimal, bool) {
	switch d := v.data.(type) {
	case Decimal:
		return d, true
	case int64:
		return DecimalFromInt(d), true
	case int:
		return DecimalFromInt(int64(d)), true
	case json.Number:
		x, err := ParseDecimal(string(d))
		return x, err == nil
	case float64:
		x, err := ParseDecimal(strconv.FormatFloat(d, 'f', -1, 64))
		return x, err == nil
	}
	return Decimal{}, false
}

// temporal returns the item as a Temporal if it is a date, dateTime or time.
func (v Value) temporal() (Temporal, bool) {
	switch d := v.data.(type) {
	case Temporal:
		return d, true
	case string:
		switch v.kindOf() {
		case sysDate:
			t, err := parseTemporal(d, kindDate)
			return t, err == nil
		case sysDateTime:
			t, err := parseTemporal(d, kindDateTime)
			return t, err == nil
		case sysTime:
			t, err := parseTemporal(d, kindTime)
			return t, err == nil
		}
	}
	return Temporal{}, false
}

// quantity returns the item as a Quantity if it is one (FHIR Quantity
// elements convert, using the UCUM code when the system is UCUM).
func (v Value) quantity() (Quantity, bool) {
	switch d := v.data.(type) {
	case Quantity:
		return d, true
	case map[string]any:
		val, ok := d["value"]
		if !ok {
			return Quantity{}, false
		}
		dv, ok := Value{data: val, typ: "decimal"}.decimal()
		if !ok {
			return Quantity{}, false
		}
		unit := ""
		if c, ok := d["code"].(string); ok {
			unit = c
		} else if u, ok := d["unit"].(string); ok {
			unit = u
		}
		if unit == "" {
			unit = "1"
		}
		return Quantity{Value: dv, Unit: unit}, true
	}
	return Quantity{}, false
}

// Decimal is an exact decimal number (System.Decimal).
type Decimal struct {
	r     *big.Rat
	scale int // digits after the point to show
}

// DecimalFromInt returns n as a Decimal.
func DecimalFromInt(n int64) Decimal {
	return Decimal{r: new(big.Rat).SetInt64(n)}
}

// ParseDecimal parses a decimal literal such as "-12.50" or "1e3".
func ParseDecimal(s string) (Decimal, error) {
	if s == "" || len(s) > 400 {
		return Decimal{}, fmt.Errorf("fhirpath: invalid decimal %q", s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return Decimal{}, fmt.Errorf("fhirpath: invalid decimal %q", s)
	}
	scale := 0
	mant := s
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 1000 || e < -1000 {
			return Decimal{}, fmt.Errorf("fhirpath: invalid decimal %q", s)
		}
		exp = e
	}
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		scale = len(mant) - i - 1
	}
	scale -= exp
	if scale < 0 {
		scale = 0
	}
	return Decimal{r: r, scale: scale}, nil
}

// Rat returns the exact value.
func (d Decimal) Rat() *big.Rat {
	if d.r == nil {
		return new(big.Rat)
	}
	return new(big.Rat).Set(d.r)
}

// Scale returns the number of digits after the decimal point of the value's
// precision.
func (d Decimal) Scale() int { return d.scale }

func (d Decimal) rat() *big.Rat {
	if d.r == nil {
		return new(big.Rat)
	}
	return d.r
}

// String renders the decimal with its precision.
func (d Decimal) String() string {
	return d.rat().FloatString(d.scale)
}

// Float64 returns the nearest float64.
func (d Decimal) Float64() float64 {
	f, _ := d.rat().Float64()
	return f
}

// Cmp compares d and e.
func (d Decimal) Cmp(e Decimal) int { return d.rat().Cmp(e.rat()) }

func (d Decimal) isInt() bool { return d.rat().IsInt() }

func (d Decimal) add(e Decimal) Decimal {
	return Decimal{r: new(big.Rat).Add(d.rat(), e.rat()), scale: max(d.scale, e.scale)}
}

func (d Decimal) sub(e Decimal) Decimal {
	return Decimal{r: new(big.Rat).Sub(d.rat(), e.rat()), scale: max(d.scale, e.scale)}
}

func (d Decimal) mul(e Decimal) Decimal {
	return Decimal{r: new(big.Rat).Mul(d.rat(), e.rat()), scale: d.scale + e.scale}
}

func (d Decimal) neg() Decimal {
	return Decimal{r: new(big.Rat).Neg(d.rat()), scale: d.scale}
}

// quo divides; ok is false for division by zero.
func (d Decimal) quo(e Decimal) (Decimal, bool) {
	if e.rat().Sign() == 0 {
		return Decimal{}, false
	}
	r := new(big.Rat).Quo(d.rat(), e.rat())
	return Decimal{r: r, scale: naturalScale(r, 8)}, true
}

// naturalScale is the number of decimals needed to show r exactly, capped.
func naturalScale(r *big.Rat, limit int) int {
	x := new(big.Rat).Set(r)
	ten := big.NewRat(10, 1)
	for s := 0; s < limit; s++ {
		if x.IsInt() {
			return s
		}
		x.Mul(x, ten)
	}
	return limit
}

// fromRatNatural builds a Decimal showing as many digits as needed (max 8).
func fromRatNatural(r *big.Rat) Decimal {
	return Decimal{r: r, scale: naturalScale(r, 8)}
}

// round rounds half away from zero to n decimals.
func (d Decimal) round(n int) Decimal {
	s := d.rat().FloatString(n)
	r, _ := new(big.Rat).SetString(s)
	return Decimal{r: r, scale: n}
}

// Quantity is a System.Quantity: a decimal value with a UCUM unit or a
// calendar duration keyword ("year", "month" ... "millisecond").
type Quantity struct {
	Value Decimal
	Unit  string
}

// String renders the quantity as a FHIRPath literal, e.g. "4.5 'mg'".
func (q Quantity) String() string {
	if calendarUnits[q.Unit] != "" {
		return q.Value.String() + " " + q.Unit
	}
	return q.Value.String() + " '" + q.Unit + "'"
}

// ParseJSON decodes FHIR JSON into the tree the evaluator works on
// (encoding/json with UseNumber).
func ParseJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("fhirpath: parse JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("fhirpath: parse JSON: trailing data")
	}
	return v, nil
}

// AsString returns the item as a string if it is a string-like primitive
// (FHIR string, code, uri, id ... or System.String).
func (v Value) AsString() (string, bool) {
	if v.data == nil || v.kindOf() != sysString {
		return "", false
	}
	return v.toStringValue()
}

// AsBool returns the item as a boolean if it is one.
func (v Value) AsBool() (bool, bool) { return v.boolValue() }

// AsInteger returns the item as an integer if it is one (FHIR integer,
// positiveInt, unsignedInt or System.Integer).
func (v Value) AsInteger() (int64, bool) {
	if v.kindOf() != sysInteger {
		return 0, false
	}
	return v.integer()
}

// AsDecimal returns the item as an exact decimal if it is a number.
func (v Value) AsDecimal() (Decimal, bool) {
	switch v.kindOf() {
	case sysInteger, sysDecimal:
		return v.decimal()
	}
	return Decimal{}, false
}

// AsTemporal returns the item as a Temporal if it is a date, dateTime,
// instant or time (FHIR or System).
func (v Value) AsTemporal() (Temporal, bool) { return v.temporal() }

// AsQuantity returns the item as a Quantity if it is a FHIR Quantity (or a
// specialisation such as Age) with a value, or a System.Quantity. The unit is
// the UCUM code when present, else the human unit.
func (v Value) AsQuantity() (Quantity, bool) {
	if v.kindOf() != sysQuantity {
		return Quantity{}, false
	}
	return v.quantity()
}

// typeDef returns the model entry of the item's type, or nil.
func (v *Value) typeDef() *typeDef {
	if v.td != nil {
		return v.td
	}
	return lookupType(v.typ)
}
