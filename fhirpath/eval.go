package fhirpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Default bounds of Env.
const (
	DefaultMaxDepth = 100
	DefaultMaxItems = 100000
)

// ErrEvaluation is wrapped by every error Evaluate returns (type errors,
// singleton violations, exceeded bounds).
var ErrEvaluation = errors.New("fhirpath: evaluation error")

// ErrLimit is wrapped (together with ErrEvaluation) when an evaluation
// exceeds Env.MaxItems or Env.MaxDepth.
var ErrLimit = errors.New("fhirpath: limit exceeded")

// Env is the environment of one evaluation. The zero value (or nil) is valid.
type Env struct {
	// Resource and RootResource are %resource and %rootResource; both
	// default to the input (RootResource defaults to Resource).
	Resource, RootResource any
	// Vars holds user variables, %name in expressions.
	Vars map[string]Collection
	// Resolve resolves a reference for resolve(). When nil, resolve() finds
	// contained resources and Bundle entries itself and otherwise returns,
	// for a literal reference "Type/id" (relative or absolute), a stub
	// {"resourceType": Type, "id": id} typed as Type.
	Resolve func(reference string) (any, bool)
	// Now is the instant now(), today() and timeOfDay() report; zero means
	// time.Now() at the start of the evaluation.
	Now time.Time
	// MaxDepth bounds repeat() and descendants() recursion and nested
	// function calls; MaxItems bounds every intermediate collection.
	MaxDepth, MaxItems int
}

type evalCtx struct {
	env      *Env
	input    Collection
	resource Collection
	rootRes  Collection
	now      time.Time
	maxDepth int
	maxItems int
	depth    int
}

// evalState bundles the per-evaluation state into one allocation.
type evalState struct {
	c  evalCtx
	s  scope
	in [1]Value
}

// noEnv is the environment of Evaluate(input, nil); it is never modified.
var noEnv Env

type scope struct {
	this     Collection
	index    int
	total    Collection
	hasIndex bool
	hasTotal bool
}

// node is a compiled expression element. eval evaluates it on focus.
type node interface {
	eval(c *evalCtx, s *scope, focus Collection) (Collection, error)
}

// Evaluate evaluates the expression on input: a decoded JSON resource or
// node (map[string]any ...), a Value, or a Collection. env may be nil.
func (e *Expression) Evaluate(input any, env *Env) (res Collection, err error) {
	defer func() {
		// Evaluation never panics on input; a bug here becomes an error.
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("%w: internal error: %v", ErrEvaluation, r)
		}
	}()
	if env == nil {
		env = &noEnv
	}
	// One allocation holds the context, the root scope and the input item.
	st := &evalState{c: evalCtx{env: env, maxDepth: env.MaxDepth, maxItems: env.MaxItems}}
	c := &st.c
	if c.maxDepth <= 0 {
		c.maxDepth = DefaultMaxDepth
	}
	if c.maxItems <= 0 {
		c.maxItems = DefaultMaxItems
	}
	switch input.(type) {
	case nil, Collection, Value, []Value:
		c.input = toCollection(input)
	default:
		st.in[0] = NewValue(input)
		c.input = st.in[:]
	}
	c.resource = c.input
	if env.Resource != nil {
		c.resource = toCollection(env.Resource)
	}
	c.rootRes = c.resource
	if env.RootResource != nil {
		c.rootRes = toCollection(env.RootResource)
	}
	c.now = env.Now
	s := &st.s
	s.this = c.input
	out, err := e.root.eval(c, s, c.input)
	if err != nil {
		return nil, fmt.Errorf("fhirpath: evaluate %q: %w", truncate(e.src, 80), err)
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func toCollection(input any) Collection {
	switch in := input.(type) {
	case nil:
		return nil
	case Collection:
		return in
	case Value:
		return Collection{in}
	case []Value:
		return Collection(in)
	}
	return Collection{NewValue(input)}
}

func (c *evalCtx) checkItems(n int) error {
	if n > c.maxItems {
		return fmt.Errorf("%w: %w: more than %d items", ErrEvaluation, ErrLimit, c.maxItems)
	}
	return nil
}

func (c *evalCtx) nowTime() time.Time {
	if c.now.IsZero() {
		c.now = time.Now()
	}
	return c.now
}

func evalErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrEvaluation, fmt.Sprintf(format, args...))
}

// litNode is a literal (or {} when c is empty).
type litNode struct{ c Collection }

func newLit(v Value) *litNode { return &litNode{c: Collection{v}} }

func (n *litNode) eval(*evalCtx, *scope, Collection) (Collection, error) { return n.c, nil }

// memberNode navigates to a child element, or at the root of an expression
// filters the input by type when name is a type.
type memberNode struct {
	name   string
	root   bool
	isType bool // name is a type of the model (checked at compile time)
}

func newMember(name string, root bool) *memberNode {
	return &memberNode{name: name, root: root, isType: root && name != "" && name[0] >= 'A' && name[0] <= 'Z' && lookupType(name) != nil}
}

func (n *memberNode) eval(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	if n.isType {
		var out Collection
		for _, v := range focus {
			if v.typ == n.name || typeDerivesFrom(v.typeDef(), n.name) {
				if len(focus) == 1 {
					return focus, nil
				}
				out = append(out, v)
			}
		}
		return out, nil
	}
	out := navigate(focus, n.name, nil)
	return out, c.checkItems(len(out))
}

// navigate appends the children called name of every item of focus to out.
func navigate(focus Collection, name string, out Collection) Collection {
	for i := range focus {
		v := &focus[i]
		m, ok := v.data.(map[string]any)
		if !ok {
			if name == "extension" || name == "id" {
				if ext := primitiveElement(v); ext != nil {
					out = navigate(Collection{{data: ext, typ: "Element", parent: v.parent, key: "_" + v.key, index: v.index}}, name, out)
				}
			}
			continue
		}
		td := v.typeDef()
		var ed *elemDef
		if td != nil {
			ed = td.element(name)
		}
		if ed == nil {
			if x, ok := m[name]; ok {
				out = emit(out, v, m, name, x, "", nil)
			} else if _, ok := m["_"+name]; ok {
				out = emit(out, v, m, name, nil, "", nil)
			}
			continue
		}
		for j, key := range ed.keys {
			x, ok := m[key]
			if !ok {
				if ed.prim[j] {
					if _, ok := m[ed.ukeys[j]]; ok {
						out = emit(out, v, m, key, nil, ed.types[j], ed.tdefs[j])
					}
				}
				continue
			}
			out = emit(out, v, m, key, x, ed.types[j], ed.tdefs[j])
		}
	}
	return out
}

// emit appends the value(s) x found under key of parent (m) to out; td is
// the model entry of typ when known.
func emit(out Collection, parent *Value, m map[string]any, key string, x any, typ string, td *typeDef) Collection {
	if arr, ok := x.([]any); ok {
		var ext []any
		extChecked := false
		for i, item := range arr {
			if item == nil {
				if !extChecked {
					ext, _ = m["_"+key].([]any)
					extChecked = true
				}
				if i >= len(ext) || ext[i] == nil {
					continue
				}
			}
			out = append(out, Value{data: item, typ: itemType(item, typ), td: td, parent: parent, key: key, index: i})
		}
		return out
	}
	if x == nil {
		// A primitive with only an id or extensions (key "_name").
		ext := m["_"+key]
		if arr, ok := ext.([]any); ok {
			for i, e := range arr {
				if e != nil {
					out = append(out, Value{typ: typ, td: td, parent: parent, key: key, index: i})
				}
			}
			return out
		}
		if ext == nil {
			return out
		}
	}
	return append(out, Value{data: x, typ: itemType(x, typ), td: td, parent: parent, key: key, index: -1})
}

func itemType(x any, typ string) string {
	if typ == "" {
		switch d := x.(type) {
		case map[string]any:
			rt, _ := d["resourceType"].(string)
			return rt
		case string:
			return "string"
		case bool:
			return "boolean"
		case json.Number:
			if strings.ContainsAny(string(d), ".eE") {
				return "decimal"
			}
			return "integer"
		}
		return ""
	}
	if typ == "Resource" || typ == "DomainResource" {
		if d, ok := x.(map[string]any); ok {
			if rt, ok := d["resourceType"].(string); ok {
				return rt
			}
		}
	}
	return typ
}

// primitiveElement returns the "_name" object holding a primitive's id and
// extensions, or nil.
func primitiveElement(v *Value) map[string]any {
	if v.parent == nil || v.key == "" {
		return nil
	}
	pm, ok := v.parent.data.(map[string]any)
	if !ok {
		return nil
	}
	x := pm["_"+v.key]
	if v.index >= 0 {
		arr, ok := x.([]any)
		if !ok || v.index >= len(arr) {
			return nil
		}
		x = arr[v.index]
	}
	m, _ := x.(map[string]any)
	return m
}

// invokeNode evaluates right on the result of left.
type invokeNode struct {
	left, right node
}

func (n *invokeNode) eval(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	l, err := n.left.eval(c, s, focus)
	if err != nil {
		return nil, err
	}
	return n.right.eval(c, s, l)
}

// indexNode is x[idx].
type indexNode struct{ x, idx node }

func (n *indexNode) eval(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	x, err := n.x.eval(c, s, focus)
	if err != nil {
		return nil, err
	}
	ic, err := n.idx.eval(c, s, s.this)
	if err != nil {
		return nil, err
	}
	if len(ic) == 0 {
		return nil, nil
	}
	if len(ic) > 1 {
		return nil, evalErr("index must be a single integer")
	}
	i, ok := ic[0].integer()
	if !ok {
		return nil, evalErr("index must be an integer")
	}
	if i < 0 || i >= int64(len(x)) {
		return nil, nil
	}
	return x[i : i+1 : i+1], nil
}

// specialNode is $this, $index or $total.
type specialNode struct{ name string }

func (n *specialNode) eval(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	switch n.name {
	case "this":
		return s.this, nil
	case "index":
		if !s.hasIndex {
			return nil, nil
		}
		return Collection{{data: int64(s.index), typ: TypeInteger, index: -1}}, nil
	default:
		if !s.hasTotal {
			return nil, nil
		}
		return s.total, nil
	}
}

// varNode is %name.
type varNode struct{ name string }

func (n *varNode) eval(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	switch n.name {
	case "context":
		return c.input, nil
	case "resource":
		return c.resource, nil
	case "rootResource":
		return c.rootRes, nil
	case "ucum":
		return strColl("http://unitsofmeasure.org"), nil
	case "sct":
		return strColl("http://snomed.info/sct"), nil
	case "loinc":
		return strColl("http://loinc.org"), nil
	}
	if v, ok := c.env.Vars[n.name]; ok {
		return v, nil
	}
	if strings.HasPrefix(n.name, "vs-") {
		return strColl("http://hl7.org/fhir/ValueSet/" + n.name[3:]), nil
	}
	if strings.HasPrefix(n.name, "ext-") {
		return strColl("http://hl7.org/fhir/StructureDefinition/" + n.name[4:]), nil
	}
	return nil, evalErr("undefined variable %%%s", n.name)
}

func strColl(s string) Collection {
	return Collection{{data: s, typ: TypeString, index: -1}}
}

func boolColl(b bool) Collection {
	return Collection{{data: b, typ: TypeBoolean, index: -1}}
}

func intColl(n int64) Collection {
	return Collection{{data: n, typ: TypeInteger, index: -1}}
}

func decColl(d Decimal) Collection {
	return Collection{{data: d, typ: TypeDecimal, index: -1}}
}

func sysValue(x any) Value { return Value{data: x, typ: inferType(x), index: -1} }

// negNode is unary minus.
type negNode struct{ x node }

func (n *negNode) eval(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	x, err := n.x.eval(c, s, focus)
	if err != nil || len(x) == 0 {
		return nil, err
	}
	if len(x) > 1 {
		return nil, evalErr("unary minus on a collection of %d items", len(x))
	}
	v := x[0]
	switch v.kindOf() {
	case sysInteger:
		i, _ := v.integer()
		return intColl(-i), nil
	case sysDecimal:
		d, ok := v.decimal()
		if !ok {
			return nil, evalErr("invalid decimal")
		}
		return decColl(d.neg()), nil
	case sysQuantity:
		q, _ := v.quantity()
		return Collection{sysValue(Quantity{Value: q.Value.neg(), Unit: q.Unit})}, nil
	}
	return nil, evalErr("unary minus on %s", v.typ)
}

// typeNode is "x is T" / "x as T".
type typeNode struct {
	op  string
	x   node
	typ string
}

func (n *typeNode) eval(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	x, err := n.x.eval(c, s, focus)
	if err != nil {
		return nil, err
	}
	if n.op == "is" {
		if len(x) == 0 {
			return nil, nil
		}
		if len(x) > 1 {
			return nil, evalErr("'is' on a collection of %d items", len(x))
		}
		return boolColl(isType(x[0], n.typ)), nil
	}
	// 'as' filters each item: R4 search parameters apply it to collections.
	return ofType(x, n.typ), nil
}

func ofType(x Collection, typ string) Collection {
	var out Collection
	for _, v := range x {
		if isType(v, typ) {
			out = append(out, v)
		}
	}
	return out
}

var systemTypeNames = map[string]string{
	"Boolean": TypeBoolean, "String": TypeString, "Integer": TypeInteger, "Decimal": TypeDecimal,
	"Date": TypeDate, "DateTime": TypeDateTime, "Time": TypeTime, "Quantity": TypeQuantity,
}

// isType reports whether v is of type name (FHIR.x, System.X or unqualified).
func isType(v Value, name string) bool {
	if strings.HasPrefix(name, "System.") {
		return v.typ == name
	}
	if strings.HasPrefix(name, "FHIR.") {
		return !isSystemType(v.typ) && (v.typ == name[5:] || typeDerivesFrom(v.typeDef(), name[5:]))
	}
	if isSystemType(v.typ) {
		return systemTypeNames[name] == v.typ
	}
	return v.typ == name || typeDerivesFrom(v.typeDef(), name)
}

// binNode is a binary operator.
type binNode struct {
	op   string
	l, r node
}

func newBinary(op string, l, r node) (node, error) {
	return &binNode{op: op, l: l, r: r}, nil
}

func (n *binNode) eval(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	switch n.op {
	case "and", "or", "xor", "implies":
		return n.evalLogic(c, s, focus)
	}
	l, err := n.l.eval(c, s, focus)
	if err != nil {
		return nil, err
	}
	r, err := n.r.eval(c, s, focus)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "|":
		out, err := union(c, l, r)
		return out, err
	case "=", "!=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		eq, known := collEqual(l, r)
		if !known {
			return nil, nil
		}
		return boolColl(eq == (n.op == "=")), nil
	case "~", "!~":
		return boolColl(collEquivalent(l, r) == (n.op == "~")), nil
	case "<", ">", "<=", ">=":
		return compareOp(n.op, l, r)
	case "in", "contains":
		if n.op == "contains" {
			l, r = r, l
		}
		if len(l) == 0 {
			return nil, nil
		}
		if len(l) > 1 {
			return nil, evalErr("'%s' needs a single item, found %d", n.op, len(l))
		}
		for _, v := range r {
			if eq, _ := itemEqual(l[0], v); eq {
				return boolColl(true), nil
			}
		}
		return boolColl(false), nil
	case "&":
		ls, err := singletonString(l, "&")
		if err != nil {
			return nil, err
		}
		rs, err := singletonString(r, "&")
		if err != nil {
			return nil, err
		}
		if len(ls)+len(rs) > maxStringLen {
			return nil, fmt.Errorf("%w: %w: string longer than %d bytes", ErrEvaluation, ErrLimit, maxStringLen)
		}
		return strColl(ls + rs), nil
	}
	return arithmetic(n.op, l, r)
}

func singletonString(c Collection, op string) (string, error) {
	if len(c) == 0 {
		return "", nil
	}
	if len(c) > 1 {
		return "", evalErr("'%s' needs a single item, found %d", op, len(c))
	}
	s, ok := c[0].toStringValue()
	if !ok || c[0].kindOf() != sysString {
		return "", evalErr("'%s' needs strings, found %s", op, c[0].typ)
	}
	return s, nil
}

// tri is a three-valued boolean: -1 empty, 0 false, 1 true.
func toTri(c Collection, op string) (int, error) {
	if len(c) == 0 {
		return -1, nil
	}
	if len(c) > 1 {
		return 0, evalErr("'%s' needs a single boolean, found %d items", op, len(c))
	}
	if b, ok := c[0].boolValue(); ok {
		if b {
			return 1, nil
		}
		return 0, nil
	}
	// A single non-boolean item counts as true (singleton evaluation).
	return 1, nil
}

func (n *binNode) evalLogic(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	lc, err := n.l.eval(c, s, focus)
	if err != nil {
		return nil, err
	}
	l, err := toTri(lc, n.op)
	if err != nil {
		return nil, err
	}
	// Short-circuit where the result is known from the left operand.
	switch {
	case n.op == "and" && l == 0:
		return boolColl(false), nil
	case n.op == "or" && l == 1:
		return boolColl(true), nil
	case n.op == "implies" && l == 0:
		return boolColl(true), nil
	}
	rc, err := n.r.eval(c, s, focus)
	if err != nil {
		return nil, err
	}
	r, err := toTri(rc, n.op)
	if err != nil {
		return nil, err
	}
	res := -1
	switch n.op {
	case "and":
		switch {
		case l == 1 && r == 1:
			res = 1
		case r == 0:
			res = 0
		}
	case "or":
		switch {
		case r == 1:
			res = 1
		case l == 0 && r == 0:
			res = 0
		}
	case "xor":
		if l >= 0 && r >= 0 {
			if l != r {
				res = 1
			} else {
				res = 0
			}
		}
	case "implies":
		switch {
		case r == 1:
			res = 1
		case l == 1 && r == 0:
			res = 0
		}
	}
	if res < 0 {
		return nil, nil
	}
	return boolColl(res == 1), nil
}

// union merges two collections removing duplicates.
func union(c *evalCtx, l, r Collection) (Collection, error) {
	switch {
	case len(l)+len(r) == 0:
		return nil, nil
	case len(l) == 0 && len(r) == 1:
		return r, nil
	case len(r) == 0 && len(l) == 1:
		return l, nil
	}
	if err := c.checkItems(len(l) + len(r)); err != nil {
		return nil, err
	}
	out := make(Collection, 0, len(l)+len(r))
	for _, part := range [2]Collection{l, r} {
	next:
		for _, v := range part {
			for _, w := range out {
				if eq, _ := itemEqual(v, w); eq {
					continue next
				}
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// collEqual implements '=' on non-empty collections.
func collEqual(l, r Collection) (eq, known bool) {
	if len(l) != len(r) {
		return false, true
	}
	for i := range l {
		eq, known := itemEqual(l[i], r[i])
		if !known {
			return false, false
		}
		if !eq {
			return false, true
		}
	}
	return true, true
}

// itemEqual implements '=' on two items; known is false when the answer is
// empty (dates of different precision).
func itemEqual(a, b Value) (eq, known bool) {
	if a.parent != nil && a.parent == b.parent && a.key == b.key && a.index == b.index {
		return true, true // the same node of the input
	}
	ka, kb := a.kindOf(), b.kindOf()
	if a.data == nil || b.data == nil {
		return a.data == nil && b.data == nil && a.typ == b.typ, true
	}
	if ka == sysNone || kb == sysNone {
		if ka != kb {
			return false, true
		}
		if a.typ == typeTypeInfo || b.typ == typeTypeInfo {
			return jsonEqual(a.data, b.data), true
		}
		return jsonEqual(a.data, b.data), true
	}
	switch {
	case ka == sysString && kb == sysString:
		as, _ := a.toStringValue()
		bs, _ := b.toStringValue()
		return as == bs, true
	case ka == sysBoolean && kb == sysBoolean:
		return a.data == b.data, true
	case (ka == sysInteger || ka == sysDecimal) && (kb == sysInteger || kb == sysDecimal):
		if ka == sysInteger && kb == sysInteger {
			x, ok1 := a.integer()
			y, ok2 := b.integer()
			if ok1 && ok2 {
				return x == y, true
			}
		}
		x, ok1 := a.decimal()
		y, ok2 := b.decimal()
		if !ok1 || !ok2 {
			return false, true
		}
		return x.Cmp(y) == 0, true
	case isTemporalKind(ka) && isTemporalKind(kb):
		if (ka == sysTime) != (kb == sysTime) {
			return false, true
		}
		x, ok1 := a.temporal()
		y, ok2 := b.temporal()
		if !ok1 || !ok2 {
			// Unparsable FHIR dates compare as their text.
			as, _ := a.toStringValue()
			bs, _ := b.toStringValue()
			return as == bs, true
		}
		cmp, ok := compareTemporal(x, y)
		if !ok {
			return false, false
		}
		return cmp == 0, true
	case ka == sysQuantity && kb == sysQuantity:
		x, ok1 := a.quantity()
		y, ok2 := b.quantity()
		if !ok1 || !ok2 {
			return false, true
		}
		cmp, ok := compareQuantity(x, y)
		if !ok {
			return false, false
		}
		return cmp == 0, true
	}
	return false, true
}

func isTemporalKind(k sysKind) bool { return k == sysDate || k == sysDateTime || k == sysTime }

// jsonEqual compares two JSON trees; numbers compare by value.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		dx, err1 := ParseDecimal(string(x))
		dy, err2 := ParseDecimal(string(y))
		return err1 == nil && err2 == nil && dx.Cmp(dy) == 0
	case string, bool, nil:
		return a == b
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// collEquivalent implements '~'.
func collEquivalent(l, r Collection) bool {
	if len(l) != len(r) {
		return false
	}
	used := make([]bool, len(r))
next:
	for _, v := range l {
		for j, w := range r {
			if !used[j] && itemEquivalent(v, w) {
				used[j] = true
				continue next
			}
		}
		return false
	}
	return true
}

func itemEquivalent(a, b Value) bool {
	ka, kb := a.kindOf(), b.kindOf()
	if a.data == nil || b.data == nil {
		return a.data == nil && b.data == nil
	}
	switch {
	case ka == sysString && kb == sysString:
		as, _ := a.toStringValue()
		bs, _ := b.toStringValue()
		return normalizeSpace(as) == normalizeSpace(bs)
	case (ka == sysInteger || ka == sysDecimal) && (kb == sysInteger || kb == sysDecimal):
		x, ok1 := a.decimal()
		y, ok2 := b.decimal()
		if !ok1 || !ok2 {
			return false
		}
		p := min(x.scale, y.scale)
		return x.round(p).Cmp(y.round(p)) == 0
	case isTemporalKind(ka) && isTemporalKind(kb):
		x, ok1 := a.temporal()
		y, ok2 := b.temporal()
		if !ok1 || !ok2 || (ka == sysTime) != (kb == sysTime) {
			return false
		}
		cmp, ok := compareTemporal(x, y)
		return ok && cmp == 0
	case ka == sysQuantity && kb == sysQuantity:
		x, ok1 := a.quantity()
		y, ok2 := b.quantity()
		if !ok1 || !ok2 {
			return false
		}
		if cu, cv := calendarUnits[x.Unit], calendarUnits[y.Unit]; cu != "" || cv != "" {
			// year ~ 'a' and month ~ 'mo' are equivalent though not equal.
			if cu == "" {
				cu = ucumTimeUnits[x.Unit]
			}
			if cv == "" {
				cv = ucumTimeUnits[y.Unit]
			}
			if cu != cv {
				return false
			}
			p := min(x.Value.scale, y.Value.scale)
			return x.Value.round(p).Cmp(y.Value.round(p)) == 0
		}
		// Compare in the first unit, at the precision of the less precise value.
		if x.Unit != y.Unit {
			conv, ok := convertQuantity(y, x.Unit)
			if !ok {
				return false
			}
			conv.Value.scale = y.Value.scale
			y = conv
		}
		p := min(x.Value.scale, y.Value.scale)
		return x.Value.round(p).Cmp(y.Value.round(p)) == 0
	case ka == sysNone && kb == sysNone:
		return jsonEqual(a.data, b.data)
	}
	eq, known := itemEqual(a, b)
	return eq && known
}

func normalizeSpace(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// compareOp implements < > <= >=.
func compareOp(op string, l, r Collection) (Collection, error) {
	if len(l) == 0 || len(r) == 0 {
		return nil, nil
	}
	if len(l) > 1 || len(r) > 1 {
		return nil, evalErr("'%s' needs single items", op)
	}
	cmp, ok, err := compareItems(l[0], r[0])
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	var res bool
	switch op {
	case "<":
		res = cmp < 0
	case ">":
		res = cmp > 0
	case "<=":
		res = cmp <= 0
	default:
		res = cmp >= 0
	}
	return boolColl(res), nil
}

func compareItems(a, b Value) (int, bool, error) {
	ka, kb := a.kindOf(), b.kindOf()
	if a.data == nil || b.data == nil {
		return 0, false, nil
	}
	switch {
	case (ka == sysInteger || ka == sysDecimal) && (kb == sysInteger || kb == sysDecimal):
		if ka == sysInteger && kb == sysInteger {
			x, ok1 := a.integer()
			y, ok2 := b.integer()
			if ok1 && ok2 {
				return cmpInt(x, y), true, nil
			}
		}
		x, ok1 := a.decimal()
		y, ok2 := b.decimal()
		if !ok1 || !ok2 {
			return 0, false, evalErr("invalid number")
		}
		return x.Cmp(y), true, nil
	case ka == sysString && kb == sysString:
		as, _ := a.toStringValue()
		bs, _ := b.toStringValue()
		return strings.Compare(as, bs), true, nil
	case isTemporalKind(ka) && isTemporalKind(kb) && (ka == sysTime) == (kb == sysTime):
		x, ok1 := a.temporal()
		y, ok2 := b.temporal()
		if !ok1 || !ok2 {
			return 0, false, evalErr("invalid date/time")
		}
		cmp, ok := compareTemporal(x, y)
		return cmp, ok, nil
	case ka == sysQuantity && kb == sysQuantity:
		x, ok1 := a.quantity()
		y, ok2 := b.quantity()
		if !ok1 || !ok2 {
			return 0, false, nil
		}
		cmp, ok := compareQuantity(x, y)
		return cmp, ok, nil
	}
	return 0, false, evalErr("cannot compare %s with %s", typeLabel(a), typeLabel(b))
}

func typeLabel(v Value) string {
	if v.typ == "" {
		return "untyped value"
	}
	return v.typ
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// ucumUnit is a unit's dimension and factor to the dimension's base unit.
type ucumUnit struct {
	dim    string
	factor *big.Rat
}

func rat(s string) *big.Rat {
	r, _ := new(big.Rat).SetString(s)
	return r
}

// ucumUnits is a small table of common UCUM units (and the definite calendar
// durations) so that comparable quantities with different units compare.
var ucumUnits = map[string]ucumUnit{
	"g": {"g", rat("1")}, "mg": {"g", rat("1/1000")}, "ug": {"g", rat("1/1000000")}, "kg": {"g", rat("1000")},
	"ng": {"g", rat("1/1000000000")}, "[lb_av]": {"g", rat("453.59237")}, "[oz_av]": {"g", rat("28.349523125")},
	"m": {"m", rat("1")}, "cm": {"m", rat("1/100")}, "mm": {"m", rat("1/1000")}, "km": {"m", rat("1000")},
	"um": {"m", rat("1/1000000")}, "[in_i]": {"m", rat("0.0254")}, "[ft_i]": {"m", rat("0.3048")},
	"L": {"L", rat("1")}, "l": {"L", rat("1")}, "dL": {"L", rat("1/10")}, "mL": {"L", rat("1/1000")}, "uL": {"L", rat("1/1000000")},
	"s": {"s", rat("1")}, "ms": {"s", rat("1/1000")}, "min": {"s", rat("60")}, "h": {"s", rat("3600")},
	"d": {"s", rat("86400")}, "wk": {"s", rat("604800")},
	"second": {"s", rat("1")}, "seconds": {"s", rat("1")}, "millisecond": {"s", rat("1/1000")}, "milliseconds": {"s", rat("1/1000")},
	"minute": {"s", rat("60")}, "minutes": {"s", rat("60")}, "hour": {"s", rat("3600")}, "hours": {"s", rat("3600")},
	"day": {"s", rat("86400")}, "days": {"s", rat("86400")}, "week": {"s", rat("604800")}, "weeks": {"s", rat("604800")},
	"mmol/L": {"mol/L", rat("1/1000")}, "mol/L": {"mol/L", rat("1")}, "umol/L": {"mol/L", rat("1/1000000")},
	"g/L": {"g/L", rat("1")}, "mg/dL": {"g/L", rat("1/100")}, "g/dL": {"g/L", rat("10")}, "mg/L": {"g/L", rat("1/1000")},
	"kPa": {"Pa", rat("1000")}, "Pa": {"Pa", rat("1")}, "mm[Hg]": {"Pa", rat("133.322387415")},
	"%": {"1", rat("1/100")}, "1": {"1", rat("1")},
}

// compareQuantity compares two quantities, converting units where the table
// knows them. ok is false for incomparable units.
func compareQuantity(a, b Quantity) (int, bool) {
	if a.Unit == b.Unit || calendarUnits[a.Unit] != "" && calendarUnits[a.Unit] == calendarUnits[b.Unit] {
		return a.Value.Cmp(b.Value), true
	}
	ua, ok1 := ucumUnits[a.Unit]
	ub, ok2 := ucumUnits[b.Unit]
	if !ok1 || !ok2 || ua.dim != ub.dim {
		return 0, false
	}
	x := new(big.Rat).Mul(a.Value.rat(), ua.factor)
	y := new(big.Rat).Mul(b.Value.rat(), ub.factor)
	return x.Cmp(y), true
}

// Size limits of computed values, so that an expression cannot make the
// evaluator build huge strings or numbers.
const (
	maxStringLen  = 1 << 22 // bytes
	maxNumberBits = 4096    // numerator plus denominator of a decimal
)

// checkSize rejects computed values beyond the size limits.
func checkSize(c Collection) error {
	for _, v := range c {
		switch d := v.data.(type) {
		case string:
			if len(d) > maxStringLen {
				return fmt.Errorf("%w: %w: string longer than %d bytes", ErrEvaluation, ErrLimit, maxStringLen)
			}
		case Decimal:
			if d.rat().Num().BitLen()+d.rat().Denom().BitLen() > maxNumberBits || d.scale > 1000 {
				return fmt.Errorf("%w: %w: decimal too large", ErrEvaluation, ErrLimit)
			}
		case Quantity:
			if d.Value.rat().Num().BitLen()+d.Value.rat().Denom().BitLen() > maxNumberBits || d.Value.scale > 1000 || len(d.Unit) > 1000 {
				return fmt.Errorf("%w: %w: quantity too large", ErrEvaluation, ErrLimit)
			}
		}
	}
	return nil
}

// arithmetic implements + - * / div mod.
func arithmetic(op string, l, r Collection) (Collection, error) {
	out, err := arithmetic0(op, l, r)
	if err != nil {
		return nil, err
	}
	return out, checkSize(out)
}

func arithmetic0(op string, l, r Collection) (Collection, error) {
	if len(l) == 0 || len(r) == 0 {
		return nil, nil
	}
	if len(l) > 1 || len(r) > 1 {
		return nil, evalErr("'%s' needs single items", op)
	}
	a, b := l[0], r[0]
	ka, kb := a.kindOf(), b.kindOf()
	if a.data == nil || b.data == nil {
		return nil, nil
	}
	switch {
	case op == "+" && ka == sysString && kb == sysString:
		as, _ := a.toStringValue()
		bs, _ := b.toStringValue()
		return strColl(as + bs), nil
	case ka == sysInteger && kb == sysInteger:
		x, ok1 := a.integer()
		y, ok2 := b.integer()
		if !ok1 || !ok2 {
			return nil, evalErr("invalid integer")
		}
		switch op {
		case "+":
			if (y > 0 && x > (1<<63-1)-y) || (y < 0 && x < (-1<<63)-y) {
				return nil, evalErr("integer overflow")
			}
			return intColl(x + y), nil
		case "-":
			if (y < 0 && x > (1<<63-1)+y) || (y > 0 && x < (-1<<63)+y) {
				return nil, evalErr("integer overflow")
			}
			return intColl(x - y), nil
		case "*":
			p := new(big.Int).Mul(big.NewInt(x), big.NewInt(y))
			if !p.IsInt64() {
				return nil, evalErr("integer overflow")
			}
			return intColl(p.Int64()), nil
		case "div":
			if y == 0 || (x == -1<<63 && y == -1) {
				return nil, nil
			}
			return intColl(x / y), nil
		case "mod":
			if y == 0 {
				return nil, nil
			}
			return intColl(x % y), nil
		case "/":
			d, ok := DecimalFromInt(x).quo(DecimalFromInt(y))
			if !ok {
				return nil, nil
			}
			return decColl(d), nil
		}
	case (ka == sysInteger || ka == sysDecimal) && (kb == sysInteger || kb == sysDecimal):
		x, ok1 := a.decimal()
		y, ok2 := b.decimal()
		if !ok1 || !ok2 {
			return nil, evalErr("invalid decimal")
		}
		switch op {
		case "+":
			return decColl(x.add(y)), nil
		case "-":
			return decColl(x.sub(y)), nil
		case "*":
			return decColl(x.mul(y)), nil
		case "/":
			d, ok := x.quo(y)
			if !ok {
				return nil, nil
			}
			return decColl(d), nil
		case "div":
			if y.rat().Sign() == 0 {
				return nil, nil
			}
			q := truncRat(new(big.Rat).Quo(x.rat(), y.rat()))
			if !q.IsInt64() {
				return nil, evalErr("integer overflow")
			}
			return intColl(q.Int64()), nil
		case "mod":
			if y.rat().Sign() == 0 {
				return nil, nil
			}
			q := truncRat(new(big.Rat).Quo(x.rat(), y.rat()))
			m := new(big.Rat).Sub(x.rat(), new(big.Rat).Mul(new(big.Rat).SetInt(q), y.rat()))
			return decColl(Decimal{r: m, scale: max(x.scale, y.scale)}), nil
		}
	case isTemporalKind(ka) && kb == sysQuantity && (op == "+" || op == "-"):
		t, ok := a.temporal()
		if !ok {
			return nil, evalErr("invalid date/time")
		}
		q, _ := b.quantity()
		sign := 1
		if op == "-" {
			sign = -1
		}
		res, err := addTemporal(t, q, sign)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEvaluation, err)
		}
		return Collection{sysValue(res)}, nil
	case ka == sysQuantity && (kb == sysQuantity || kb == sysInteger || kb == sysDecimal):
		x, _ := a.quantity()
		if kb != sysQuantity {
			y, _ := b.decimal()
			switch op {
			case "*":
				return Collection{sysValue(Quantity{Value: x.Value.mul(y), Unit: x.Unit})}, nil
			case "/":
				d, ok := x.Value.quo(y)
				if !ok {
					return nil, nil
				}
				return Collection{sysValue(Quantity{Value: d, Unit: x.Unit})}, nil
			}
			break
		}
		y, _ := b.quantity()
		switch op {
		case "+", "-":
			if x.Unit != y.Unit {
				yv, ok := convertQuantity(y, x.Unit)
				if !ok {
					return nil, evalErr("cannot add quantities in %q and %q", x.Unit, y.Unit)
				}
				y = yv
			}
			if op == "+" {
				return Collection{sysValue(Quantity{Value: x.Value.add(y.Value), Unit: x.Unit})}, nil
			}
			return Collection{sysValue(Quantity{Value: x.Value.sub(y.Value), Unit: x.Unit})}, nil
		case "*":
			return Collection{sysValue(Quantity{Value: x.Value.mul(y.Value), Unit: mulUnit(x.Unit, y.Unit, ".")})}, nil
		case "/":
			d, ok := x.Value.quo(y.Value)
			if !ok {
				return nil, nil
			}
			if x.Unit == y.Unit {
				return Collection{sysValue(Quantity{Value: d, Unit: "1"})}, nil
			}
			return Collection{sysValue(Quantity{Value: d, Unit: mulUnit(x.Unit, y.Unit, "/")})}, nil
		}
	case (ka == sysInteger || ka == sysDecimal) && kb == sysQuantity && op == "*":
		x, _ := a.decimal()
		y, _ := b.quantity()
		return Collection{sysValue(Quantity{Value: x.mul(y.Value), Unit: y.Unit})}, nil
	}
	return nil, evalErr("operator '%s' not defined for %s and %s", op, typeLabel(a), typeLabel(b))
}

func mulUnit(a, b, sep string) string {
	if a == "1" && sep == "." {
		return b
	}
	if b == "1" {
		return a
	}
	return a + sep + b
}

// convertQuantity converts q to unit when the table knows both units.
func convertQuantity(q Quantity, unit string) (Quantity, bool) {
	ua, ok1 := ucumUnits[q.Unit]
	ub, ok2 := ucumUnits[unit]
	if !ok1 || !ok2 || ua.dim != ub.dim {
		return Quantity{}, false
	}
	r := new(big.Rat).Mul(q.Value.rat(), ua.factor)
	r.Quo(r, ub.factor)
	return Quantity{Value: Decimal{r: r, scale: max(q.Value.scale, naturalScale(r, 8))}, Unit: unit}, true
}
