package fhirpath

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// funcDef describes a function: its arity and implementation.
type funcDef struct {
	min, max int
	typeArg  bool // the argument is a type specifier
	fn       func(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error)
}

// funcNode is a function invocation.
type funcNode struct {
	name    string
	def     *funcDef
	args    []node
	typeArg string
}

var functions map[string]*funcDef

func init() {
	functions = map[string]*funcDef{
		// existence
		"empty":      {0, 0, false, fnEmpty},
		"exists":     {0, 1, false, fnExists},
		"all":        {1, 1, false, fnAll},
		"allTrue":    {0, 0, false, boolAgg(func(t, f, n int) bool { return t == n })},
		"anyTrue":    {0, 0, false, boolAgg(func(t, f, n int) bool { return t > 0 })},
		"allFalse":   {0, 0, false, boolAgg(func(t, f, n int) bool { return f == n })},
		"anyFalse":   {0, 0, false, boolAgg(func(t, f, n int) bool { return f > 0 })},
		"subsetOf":   {1, 1, false, fnSubsetOf},
		"supersetOf": {1, 1, false, fnSupersetOf},
		"count":      {0, 0, false, fnCount},
		"distinct":   {0, 0, false, fnDistinct},
		"isDistinct": {0, 0, false, fnIsDistinct},
		// filtering and projection
		"where":     {1, 1, false, fnWhere},
		"select":    {1, 1, false, fnSelect},
		"repeat":    {1, 1, false, fnRepeat},
		"ofType":    {1, 1, true, fnOfType},
		"aggregate": {1, 2, false, fnAggregate},
		// FHIRPath 2.0 aggregates
		"sum": {0, 0, false, fnSum},
		"min": {0, 0, false, fnMinMax},
		"max": {0, 0, false, fnMinMax},
		"avg": {0, 0, false, fnAvg},
		// subsetting
		"single":    {0, 0, false, fnSingle},
		"first":     {0, 0, false, fnFirst},
		"last":      {0, 0, false, fnLast},
		"tail":      {0, 0, false, fnTail},
		"skip":      {1, 1, false, fnSkip},
		"take":      {1, 1, false, fnTake},
		"intersect": {1, 1, false, fnIntersect},
		"exclude":   {1, 1, false, fnExclude},
		// combining
		"union":   {1, 1, false, fnUnion},
		"combine": {1, 1, false, fnCombine},
		// conversion
		"iif":                {2, 3, false, fnIif},
		"toBoolean":          {0, 0, false, convFn(toBoolean, false)},
		"convertsToBoolean":  {0, 0, false, convFn(toBoolean, true)},
		"toInteger":          {0, 0, false, convFn(toInteger, false)},
		"convertsToInteger":  {0, 0, false, convFn(toInteger, true)},
		"toDecimal":          {0, 0, false, convFn(toDecimal, false)},
		"convertsToDecimal":  {0, 0, false, convFn(toDecimal, true)},
		"toString":           {0, 0, false, convFn(toStringConv, false)},
		"convertsToString":   {0, 0, false, convFn(toStringConv, true)},
		"toDate":             {0, 0, false, convFn(toDate, false)},
		"convertsToDate":     {0, 0, false, convFn(toDate, true)},
		"toDateTime":         {0, 0, false, convFn(toDateTime, false)},
		"convertsToDateTime": {0, 0, false, convFn(toDateTime, true)},
		"toTime":             {0, 0, false, convFn(toTime, false)},
		"convertsToTime":     {0, 0, false, convFn(toTime, true)},
		"toQuantity":         {0, 1, false, fnToQuantity(false)},
		"convertsToQuantity": {0, 1, false, fnToQuantity(true)},
		// strings
		"indexOf":        {1, 1, false, fnIndexOf},
		"substring":      {1, 2, false, fnSubstring},
		"startsWith":     {1, 1, false, strPred(strings.HasPrefix)},
		"endsWith":       {1, 1, false, strPred(strings.HasSuffix)},
		"contains":       {1, 1, false, strPred(strings.Contains)},
		"upper":          {0, 0, false, strMap(strings.ToUpper)},
		"lower":          {0, 0, false, strMap(strings.ToLower)},
		"trim":           {0, 0, false, strMap(strings.TrimSpace)},
		"replace":        {2, 2, false, fnReplace},
		"matches":        {1, 1, false, fnMatches},
		"replaceMatches": {2, 2, false, fnReplaceMatches},
		"length":         {0, 0, false, fnLength},
		"toChars":        {0, 0, false, fnToChars},
		"split":          {1, 1, false, fnSplit},
		"join":           {0, 1, false, fnJoin},
		"encode":         {1, 1, false, fnEncode},
		"decode":         {1, 1, false, fnDecode},
		// math
		"abs":      {0, 0, false, fnAbs},
		"ceiling":  {0, 0, false, mathInt(math.Ceil)},
		"floor":    {0, 0, false, mathInt(math.Floor)},
		"truncate": {0, 0, false, mathInt(math.Trunc)},
		"exp":      {0, 0, false, mathFloat(math.Exp)},
		"ln":       {0, 0, false, mathFloat(math.Log)},
		"sqrt":     {0, 0, false, mathFloat(math.Sqrt)},
		"log":      {1, 1, false, fnLog},
		"power":    {1, 1, false, fnPower},
		"round":    {0, 1, false, fnRound},
		// tree
		"children":    {0, 0, false, fnChildren},
		"descendants": {0, 0, false, fnDescendants},
		// utility
		"trace":     {1, 2, false, fnTrace},
		"now":       {0, 0, false, fnNow},
		"today":     {0, 0, false, fnToday},
		"timeOfDay": {0, 0, false, fnTimeOfDay},
		"not":       {0, 0, false, fnNot},
		// types
		"is":   {1, 1, true, fnIs},
		"as":   {1, 1, true, fnOfType},
		"type": {0, 0, false, fnType},
		// FHIR additions
		"extension":  {1, 1, false, fnExtension},
		"hasValue":   {0, 0, false, fnHasValue},
		"getValue":   {0, 0, false, fnGetValue},
		"resolve":    {0, 0, false, fnResolve},
		"memberOf":   {1, 1, false, func(*evalCtx, *scope, Collection, *funcNode) (Collection, error) { return nil, nil }},
		"conformsTo": {1, 1, false, fnConformsTo},
		"htmlChecks": {0, 0, false, fnHTMLChecks},
	}
}

func newFunc(name string, args []node, errf func(string, ...any) error) (node, error) {
	def := functions[name]
	if def == nil {
		return nil, errf("unknown function %s()", name)
	}
	if len(args) < def.min || len(args) > def.max {
		return nil, errf("%s() takes %d to %d arguments, found %d", name, def.min, def.max, len(args))
	}
	n := &funcNode{name: name, def: def, args: args}
	if def.typeArg {
		t, ok := typeSpecifierOf(args[0])
		if !ok {
			return nil, errf("%s() needs a type name", name)
		}
		n.typeArg = t
	}
	return n, nil
}

// typeSpecifierOf turns an argument parsed as an expression back into a type name.
func typeSpecifierOf(a node) (string, bool) {
	switch x := a.(type) {
	case *memberNode:
		return x.name, true
	case *invokeNode:
		l, ok1 := x.left.(*memberNode)
		r, ok2 := x.right.(*memberNode)
		if ok1 && ok2 {
			return l.name + "." + r.name, true
		}
	}
	return "", false
}

func (n *funcNode) eval(c *evalCtx, s *scope, focus Collection) (Collection, error) {
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > MaxNesting+c.maxDepth {
		return nil, fmt.Errorf("%w: %w: calls nested deeper than %d", ErrEvaluation, ErrLimit, c.maxDepth)
	}
	out, err := n.def.fn(c, s, focus, n)
	if err != nil {
		return nil, err
	}
	return out, c.checkItems(len(out))
}

// arg evaluates argument i (not an iteration argument) in the enclosing scope.
func (n *funcNode) arg(c *evalCtx, s *scope, i int) (Collection, error) {
	return n.args[i].eval(c, s, s.this)
}

// each evaluates argument i for one item, with $this and $index set.
func (n *funcNode) each(c *evalCtx, item Collection, idx int, i int) (Collection, error) {
	s := &scope{this: item, index: idx, hasIndex: true}
	return n.args[i].eval(c, s, item)
}

func single(focus Collection, name string) (Value, bool, error) {
	if len(focus) == 0 {
		return Value{}, false, nil
	}
	if len(focus) > 1 {
		return Value{}, false, evalErr("%s() needs a single item, found %d", name, len(focus))
	}
	return focus[0], true, nil
}

func fnEmpty(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	return boolColl(len(focus) == 0), nil
}

func fnExists(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(n.args) == 0 {
		return boolColl(len(focus) > 0), nil
	}
	w, err := fnWhere(c, s, focus, n)
	if err != nil {
		return nil, err
	}
	return boolColl(len(w) > 0), nil
}

func criterion(r Collection, name string) (bool, error) {
	t, err := toTri(r, name)
	return t == 1, err
}

func fnWhere(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	var out Collection
	for i := range focus {
		r, err := n.each(c, focus[i:i+1:i+1], i, 0)
		if err != nil {
			return nil, err
		}
		ok, err := criterion(r, "where")
		if err != nil {
			return nil, err
		}
		if ok {
			if len(focus) == 1 {
				return focus, nil
			}
			out = append(out, focus[i])
		}
	}
	return out, nil
}

func fnAll(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	for i := range focus {
		r, err := n.each(c, focus[i:i+1:i+1], i, 0)
		if err != nil {
			return nil, err
		}
		ok, err := criterion(r, "all")
		if err != nil {
			return nil, err
		}
		if !ok {
			return boolColl(false), nil
		}
	}
	return boolColl(true), nil
}

func boolAgg(pred func(t, f, n int) bool) func(*evalCtx, *scope, Collection, *funcNode) (Collection, error) {
	return func(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
		t, f := 0, 0
		for _, v := range focus {
			b, ok := v.boolValue()
			if !ok {
				return nil, evalErr("%s() needs booleans, found %s", n.name, typeLabel(v))
			}
			if b {
				t++
			} else {
				f++
			}
		}
		return boolColl(pred(t, f, len(focus))), nil
	}
}

func containsItem(c Collection, v Value) bool {
	for _, w := range c {
		if eq, _ := itemEqual(v, w); eq {
			return true
		}
	}
	return false
}

func fnSubsetOf(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	other, err := n.arg(c, s, 0)
	if err != nil {
		return nil, err
	}
	return boolColl(allIn(focus, other)), nil
}

func fnSupersetOf(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	other, err := n.arg(c, s, 0)
	if err != nil {
		return nil, err
	}
	return boolColl(allIn(other, focus)), nil
}

// allIn reports whether every item of a is in b (FHIRPath equality).
func allIn(a, b Collection) bool {
	for _, v := range a {
		if !containsItem(b, v) {
			return false
		}
	}
	return true
}

func fnCount(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	return intColl(int64(len(focus))), nil
}

func distinct(focus Collection) Collection {
	out := make(Collection, 0, len(focus))
	for _, v := range focus {
		if !containsItem(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func fnDistinct(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	return distinct(focus), nil
}

func fnIsDistinct(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	return boolColl(len(distinct(focus)) == len(focus)), nil
}

func fnSelect(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	var out Collection
	for i := range focus {
		r, err := n.each(c, focus[i:i+1:i+1], i, 0)
		if err != nil {
			return nil, err
		}
		if len(focus) == 1 {
			return r, nil
		}
		out = append(out, r...)
		if err := c.checkItems(len(out)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// identity identifies an item of the input tree for repeat().
type identity struct {
	ptr   uintptr
	key   string
	index int
}

func identityOf(v Value) (identity, bool) {
	if m, ok := v.data.(map[string]any); ok {
		return identity{ptr: reflect.ValueOf(m).Pointer(), index: -1}, true
	}
	if v.parent != nil {
		if pm, ok := v.parent.data.(map[string]any); ok {
			return identity{ptr: reflect.ValueOf(pm).Pointer(), key: v.key, index: v.index}, true
		}
	}
	return identity{}, false
}

func fnRepeat(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	var out Collection
	seen := map[identity]bool{}
	current := focus
	for depth := 0; len(current) > 0; depth++ {
		if depth > c.maxDepth {
			return nil, fmt.Errorf("%w: %w: repeat() deeper than %d", ErrEvaluation, ErrLimit, c.maxDepth)
		}
		var next Collection
		for i := range current {
			r, err := n.each(c, current[i:i+1:i+1], i, 0)
			if err != nil {
				return nil, err
			}
			for _, v := range r {
				if id, ok := identityOf(v); ok {
					if seen[id] {
						continue
					}
					seen[id] = true
				} else if containsItem(out, v) {
					continue
				}
				out = append(out, v)
				next = append(next, v)
			}
			if err := c.checkItems(len(out)); err != nil {
				return nil, err
			}
		}
		current = next
	}
	return out, nil
}

func fnAggregate(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	var total Collection
	if len(n.args) > 1 {
		var err error
		if total, err = n.arg(c, s, 1); err != nil {
			return nil, err
		}
	}
	for i := range focus {
		item := focus[i : i+1 : i+1]
		sc := &scope{this: item, index: i, hasIndex: true, total: total, hasTotal: true}
		r, err := n.args[0].eval(c, sc, item)
		if err != nil {
			return nil, err
		}
		total = r
	}
	return total, nil
}

func fnOfType(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	return ofType(focus, n.typeArg), nil
}

func fnIs(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	v, ok, err := single(focus, "is")
	if err != nil || !ok {
		return nil, err
	}
	return boolColl(isType(v, n.typeArg)), nil
}

func fnType(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	out := make(Collection, 0, len(focus))
	for _, v := range focus {
		ns, name := "FHIR", v.typ
		if isSystemType(v.typ) {
			ns, name = "System", strings.TrimPrefix(v.typ, "System.")
		}
		out = append(out, Value{data: map[string]any{"namespace": ns, "name": name}, typ: typeTypeInfo, index: -1})
	}
	return out, nil
}

func fnSingle(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(focus) > 1 {
		return nil, evalErr("single() on a collection of %d items", len(focus))
	}
	return focus, nil
}

func fnFirst(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(focus) == 0 {
		return nil, nil
	}
	return focus[:1:1], nil
}

func fnLast(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(focus) == 0 {
		return nil, nil
	}
	return focus[len(focus)-1:], nil
}

func fnTail(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(focus) <= 1 {
		return nil, nil
	}
	return focus[1:], nil
}

func intArg(c *evalCtx, s *scope, n *funcNode, i int) (int64, bool, error) {
	a, err := n.arg(c, s, i)
	if err != nil {
		return 0, false, err
	}
	v, ok, err := single(a, n.name)
	if err != nil || !ok {
		return 0, false, err
	}
	x, ok := v.integer()
	if !ok {
		return 0, false, evalErr("%s() needs an integer argument, found %s", n.name, typeLabel(v))
	}
	return x, true, nil
}

func fnSkip(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	k, ok, err := intArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	if k <= 0 {
		return focus, nil
	}
	if k >= int64(len(focus)) {
		return nil, nil
	}
	return focus[k:], nil
}

func fnTake(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	k, ok, err := intArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	if k <= 0 {
		return nil, nil
	}
	if k >= int64(len(focus)) {
		return focus, nil
	}
	return focus[:k:k], nil
}

func fnIntersect(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	other, err := n.arg(c, s, 0)
	if err != nil {
		return nil, err
	}
	var out Collection
	for _, v := range focus {
		if containsItem(other, v) && !containsItem(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

func fnExclude(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	other, err := n.arg(c, s, 0)
	if err != nil {
		return nil, err
	}
	var out Collection
	for _, v := range focus {
		if !containsItem(other, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

func fnUnion(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	other, err := n.arg(c, s, 0)
	if err != nil {
		return nil, err
	}
	return union(c, focus, other)
}

func fnCombine(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	other, err := n.arg(c, s, 0)
	if err != nil {
		return nil, err
	}
	if err := c.checkItems(len(focus) + len(other)); err != nil {
		return nil, err
	}
	out := make(Collection, 0, len(focus)+len(other))
	return append(append(out, focus...), other...), nil
}

// fnConformsTo answers for the base StructureDefinitions of the R4 types
// (http://hl7.org/fhir/StructureDefinition/<Type>); profiles are not
// validated, so for any other URL the result is empty.
func fnConformsTo(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	url, ok, err := stringArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	v, ok, err := single(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	const base = "http://hl7.org/fhir/StructureDefinition/"
	if !strings.HasPrefix(url, base) || lookupType(url[len(base):]) == nil {
		return nil, nil
	}
	return boolColl(derivesFrom(v.typ, url[len(base):])), nil
}

func fnIif(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	sc := s
	if len(focus) > 0 || len(s.this) > 0 {
		sc = &scope{this: focus, index: s.index, hasIndex: s.hasIndex, total: s.total, hasTotal: s.hasTotal}
	}
	cond, err := n.args[0].eval(c, sc, focus)
	if err != nil {
		return nil, err
	}
	// A criterion of several items counts as true, as the FHIRPath R4 test suite expects.
	ok := len(cond) > 1
	if !ok {
		if ok, err = criterion(cond, "iif"); err != nil {
			return nil, err
		}
	}
	if ok {
		return n.args[1].eval(c, sc, focus)
	}
	if len(n.args) > 2 {
		return n.args[2].eval(c, sc, focus)
	}
	return nil, nil
}

// conversions

type converter func(v Value) (Value, bool)

func convFn(conv converter, test bool) func(*evalCtx, *scope, Collection, *funcNode) (Collection, error) {
	return func(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
		v, ok, err := single(focus, n.name)
		if err != nil || !ok {
			return nil, err
		}
		r, ok := conv(v)
		if test {
			return boolColl(ok), nil
		}
		if !ok {
			return nil, nil
		}
		return Collection{r}, nil
	}
}

func toBoolean(v Value) (Value, bool) {
	switch v.kindOf() {
	case sysBoolean:
		b, ok := v.boolValue()
		return sysValue(b), ok
	case sysInteger:
		i, _ := v.integer()
		if i == 0 || i == 1 {
			return sysValue(i == 1), true
		}
	case sysDecimal:
		d, ok := v.decimal()
		if ok && (d.Cmp(DecimalFromInt(0)) == 0 || d.Cmp(DecimalFromInt(1)) == 0) {
			return sysValue(d.Cmp(DecimalFromInt(1)) == 0), true
		}
	case sysString:
		s, _ := v.toStringValue()
		switch strings.ToLower(s) {
		case "true", "t", "yes", "y", "1", "1.0":
			return sysValue(true), true
		case "false", "f", "no", "n", "0", "0.0":
			return sysValue(false), true
		}
	}
	return Value{}, false
}

var intRE = regexp.MustCompile(`^[+-]?[0-9]+$`)
var decRE = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)

func toInteger(v Value) (Value, bool) {
	switch v.kindOf() {
	case sysInteger:
		i, ok := v.integer()
		return sysValue(i), ok
	case sysBoolean:
		b, _ := v.boolValue()
		if b {
			return sysValue(int64(1)), true
		}
		return sysValue(int64(0)), true
	case sysString:
		s, _ := v.toStringValue()
		if intRE.MatchString(s) {
			i, err := strconv.ParseInt(s, 10, 64)
			return sysValue(i), err == nil
		}
	}
	return Value{}, false
}

func toDecimal(v Value) (Value, bool) {
	switch v.kindOf() {
	case sysInteger, sysDecimal:
		d, ok := v.decimal()
		return sysValue(d), ok
	case sysBoolean:
		b, _ := v.boolValue()
		if b {
			return sysValue(Decimal{r: big.NewRat(1, 1), scale: 1}), true
		}
		return sysValue(Decimal{r: new(big.Rat), scale: 1}), true
	case sysString:
		s, _ := v.toStringValue()
		if decRE.MatchString(s) {
			d, err := ParseDecimal(s)
			return sysValue(d), err == nil
		}
	}
	return Value{}, false
}

func toStringConv(v Value) (Value, bool) {
	if v.kindOf() == sysNone || v.data == nil {
		return Value{}, false
	}
	s, ok := v.toStringValue()
	return sysValue(s), ok
}

func toDate(v Value) (Value, bool) {
	switch v.kindOf() {
	case sysDate, sysDateTime:
		t, ok := v.temporal()
		if !ok {
			return Value{}, false
		}
		t.kind = kindDate
		t.prec = min(t.prec, PrecDay)
		t.hasTZ = false
		return sysValue(t), true
	case sysString:
		s, _ := v.toStringValue()
		t, err := parseTemporal(s, kindDate)
		if err != nil {
			if dt, err2 := parseTemporal(s, kindDateTime); err2 == nil {
				dt.kind, dt.prec, dt.hasTZ = kindDate, min(dt.prec, PrecDay), false
				return sysValue(dt), true
			}
			return Value{}, false
		}
		return sysValue(t), true
	}
	return Value{}, false
}

func toDateTime(v Value) (Value, bool) {
	switch v.kindOf() {
	case sysDate, sysDateTime:
		t, ok := v.temporal()
		if !ok {
			return Value{}, false
		}
		t.kind = kindDateTime
		return sysValue(t), true
	case sysString:
		s, _ := v.toStringValue()
		t, err := parseTemporal(s, kindDateTime)
		return sysValue(t), err == nil
	}
	return Value{}, false
}

func toTime(v Value) (Value, bool) {
	switch v.kindOf() {
	case sysTime:
		t, ok := v.temporal()
		return sysValue(t), ok
	case sysString:
		s, _ := v.toStringValue()
		t, err := parseTemporal(strings.TrimPrefix(s, "T"), kindTime)
		return sysValue(t), err == nil
	}
	return Value{}, false
}

var quantityRE = regexp.MustCompile(`^([+-]?[0-9]+(?:\.[0-9]+)?)\s*(?:'([^']+)'|([a-zA-Z]+))?$`)

func toQuantityValue(v Value) (Quantity, bool) {
	switch v.kindOf() {
	case sysQuantity:
		return v.quantity()
	case sysInteger, sysDecimal:
		d, ok := v.decimal()
		return Quantity{Value: d, Unit: "1"}, ok
	case sysBoolean:
		b, _ := v.boolValue()
		d := DecimalFromInt(0)
		if b {
			d = DecimalFromInt(1)
		}
		d.scale = 1
		return Quantity{Value: d, Unit: "1"}, true
	case sysString:
		s, _ := v.toStringValue()
		m := quantityRE.FindStringSubmatch(strings.TrimSpace(s))
		if m == nil {
			return Quantity{}, false
		}
		d, err := ParseDecimal(m[1])
		if err != nil {
			return Quantity{}, false
		}
		unit := "1"
		switch {
		case m[2] != "":
			unit = m[2]
		case m[3] != "":
			if calendarUnits[m[3]] == "" {
				return Quantity{}, false
			}
			unit = m[3]
		}
		return Quantity{Value: d, Unit: unit}, true
	}
	return Quantity{}, false
}

func fnToQuantity(test bool) func(*evalCtx, *scope, Collection, *funcNode) (Collection, error) {
	return func(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
		v, ok, err := single(focus, n.name)
		if err != nil || !ok {
			return nil, err
		}
		q, ok := toQuantityValue(v)
		if ok && len(n.args) > 0 {
			ua, err := n.arg(c, s, 0)
			if err != nil {
				return nil, err
			}
			if u, has, _ := single(ua, n.name); has {
				unit, _ := u.toStringValue()
				if unit != q.Unit {
					q, ok = convertQuantity(q, unit)
				}
			}
		}
		if test {
			return boolColl(ok), nil
		}
		if !ok {
			return nil, nil
		}
		return Collection{sysValue(q)}, nil
	}
}

// strings

// inputString returns the single string input of a string function.
func inputString(focus Collection, name string) (string, bool, error) {
	v, ok, err := single(focus, name)
	if err != nil || !ok {
		return "", false, err
	}
	if v.data == nil {
		return "", false, nil
	}
	if v.kindOf() != sysString {
		return "", false, evalErr("%s() needs a string, found %s", name, typeLabel(v))
	}
	s, _ := v.toStringValue()
	return s, true, nil
}

func stringArg(c *evalCtx, s *scope, n *funcNode, i int) (string, bool, error) {
	a, err := n.arg(c, s, i)
	if err != nil {
		return "", false, err
	}
	return inputString(a, n.name)
}

func strPred(f func(s, sub string) bool) func(*evalCtx, *scope, Collection, *funcNode) (Collection, error) {
	return func(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
		str, ok, err := inputString(focus, n.name)
		if err != nil || !ok {
			return nil, err
		}
		sub, ok, err := stringArg(c, s, n, 0)
		if err != nil || !ok {
			return nil, err
		}
		return boolColl(f(str, sub)), nil
	}
}

func strMap(f func(string) string) func(*evalCtx, *scope, Collection, *funcNode) (Collection, error) {
	return func(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
		str, ok, err := inputString(focus, n.name)
		if err != nil || !ok {
			return nil, err
		}
		return strColl(f(str)), nil
	}
}

func fnIndexOf(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	sub, ok, err := stringArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	i := strings.Index(str, sub)
	if i < 0 {
		return intColl(-1), nil
	}
	return intColl(int64(utf8.RuneCountInString(str[:i]))), nil
}

func fnSubstring(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	start, ok, err := intArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	r := []rune(str)
	if start < 0 || start >= int64(len(r)) {
		return nil, nil
	}
	end := int64(len(r))
	if len(n.args) > 1 {
		l, ok, err := intArg(c, s, n, 1)
		if err != nil {
			return nil, err
		}
		if ok {
			if l <= 0 {
				return strColl(""), nil
			}
			end = min(end, start+l)
		}
	}
	return strColl(string(r[start:end])), nil
}

func fnReplace(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	pat, ok, err := stringArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	sub, ok, err := stringArg(c, s, n, 1)
	if err != nil || !ok {
		return nil, err
	}
	count := len(str) + 1
	if pat != "" {
		count = strings.Count(str, pat)
	}
	if len(str)+count*(len(sub)-len(pat)) > maxStringLen {
		return nil, fmt.Errorf("%w: %w: string longer than %d bytes", ErrEvaluation, ErrLimit, maxStringLen)
	}
	return strColl(strings.ReplaceAll(str, pat, sub)), nil
}

var (
	regexCache   sync.Map // string -> *regexp.Regexp
	regexCacheN  int
	regexCacheMu sync.Mutex
)

const maxRegexLen = 2000

func compileRegex(p string) (*regexp.Regexp, error) {
	if r, ok := regexCache.Load(p); ok {
		return r.(*regexp.Regexp), nil
	}
	if len(p) > maxRegexLen {
		return nil, evalErr("regular expression longer than %d characters", maxRegexLen)
	}
	// (?s): '.' matches newlines, as in the FHIRPath regex dialect.
	re, err := regexp.Compile("(?s)" + p)
	if err != nil {
		return nil, evalErr("invalid regular expression: %v", err)
	}
	regexCacheMu.Lock()
	if regexCacheN < 1000 {
		regexCacheN++
		regexCache.Store(p, re)
	}
	regexCacheMu.Unlock()
	return re, nil
}

func fnMatches(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	pat, ok, err := stringArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	re, err := compileRegex(pat)
	if err != nil {
		return nil, err
	}
	return boolColl(re.MatchString(str)), nil
}

func fnReplaceMatches(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	pat, ok, err := stringArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	sub, ok, err := stringArg(c, s, n, 1)
	if err != nil || !ok {
		return nil, err
	}
	re, err := compileRegex(pat)
	if err != nil {
		return nil, err
	}
	out := strColl(re.ReplaceAllString(str, sub))
	return out, checkSize(out)
}

func fnLength(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	return intColl(int64(utf8.RuneCountInString(str))), nil
}

func fnToChars(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	if err := c.checkItems(len(str)); err != nil {
		return nil, err
	}
	out := make(Collection, 0, len(str))
	for _, r := range str {
		out = append(out, sysValue(string(r)))
	}
	return out, nil
}

func fnSplit(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	sep, ok, err := stringArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	parts := strings.Split(str, sep)
	if err := c.checkItems(len(parts)); err != nil {
		return nil, err
	}
	out := make(Collection, len(parts))
	for i, p := range parts {
		out[i] = sysValue(p)
	}
	return out, nil
}

func fnJoin(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	sep := ""
	if len(n.args) > 0 {
		var err error
		if sep, _, err = stringArg(c, s, n, 0); err != nil {
			return nil, err
		}
	}
	parts := make([]string, 0, len(focus))
	for _, v := range focus {
		if v.kindOf() != sysString {
			return nil, evalErr("join() needs strings, found %s", typeLabel(v))
		}
		str, _ := v.toStringValue()
		parts = append(parts, str)
	}
	out := strColl(strings.Join(parts, sep))
	return out, checkSize(out)
}

func fnEncode(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	enc, ok, err := stringArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	switch enc {
	case "base64":
		return strColl(base64.StdEncoding.EncodeToString([]byte(str))), nil
	case "urlbase64":
		return strColl(base64.URLEncoding.EncodeToString([]byte(str))), nil
	case "hex":
		return strColl(hex.EncodeToString([]byte(str))), nil
	}
	return nil, evalErr("encode(): unknown encoding %q", enc)
}

func fnDecode(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	str, ok, err := inputString(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	enc, ok, err := stringArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	var b []byte
	switch enc {
	case "base64":
		b, err = base64.StdEncoding.DecodeString(str)
	case "urlbase64":
		b, err = base64.URLEncoding.DecodeString(str)
	case "hex":
		b, err = hex.DecodeString(str)
	default:
		return nil, evalErr("decode(): unknown encoding %q", enc)
	}
	if err != nil {
		return nil, nil
	}
	return strColl(string(b)), nil
}

// math

func numberInput(focus Collection, name string) (Value, bool, error) {
	v, ok, err := single(focus, name)
	if err != nil || !ok {
		return Value{}, false, err
	}
	switch v.kindOf() {
	case sysInteger, sysDecimal:
		return v, true, nil
	}
	return Value{}, false, evalErr("%s() needs a number, found %s", name, typeLabel(v))
}

func fnAbs(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	v, ok, err := single(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	switch v.kindOf() {
	case sysInteger:
		i, _ := v.integer()
		if i < 0 {
			i = -i
		}
		return intColl(i), nil
	case sysDecimal:
		d, _ := v.decimal()
		if d.rat().Sign() < 0 {
			d = d.neg()
		}
		return decColl(d), nil
	case sysQuantity:
		q, _ := v.quantity()
		if q.Value.rat().Sign() < 0 {
			q.Value = q.Value.neg()
		}
		return Collection{sysValue(q)}, nil
	}
	return nil, evalErr("abs() needs a number, found %s", typeLabel(v))
}

func mathInt(f func(float64) float64) func(*evalCtx, *scope, Collection, *funcNode) (Collection, error) {
	return func(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
		v, ok, err := numberInput(focus, n.name)
		if err != nil || !ok {
			return nil, err
		}
		if i, ok := v.integer(); ok {
			return intColl(i), nil
		}
		d, _ := v.decimal()
		q := truncRat(d.rat())
		rem := new(big.Rat).Sub(d.rat(), new(big.Rat).SetInt(q))
		switch n.name {
		case "ceiling":
			if rem.Sign() > 0 {
				q.Add(q, big.NewInt(1))
			}
		case "floor":
			if rem.Sign() < 0 {
				q.Sub(q, big.NewInt(1))
			}
		}
		if !q.IsInt64() {
			return nil, evalErr("%s(): result out of range", n.name)
		}
		return intColl(q.Int64()), nil
	}
}

func floatResult(f float64) (Collection, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, nil
	}
	r := new(big.Rat)
	r.SetFloat64(f)
	return decColl(fromRatNatural(r)), nil
}

func mathFloat(f func(float64) float64) func(*evalCtx, *scope, Collection, *funcNode) (Collection, error) {
	return func(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
		v, ok, err := numberInput(focus, n.name)
		if err != nil || !ok {
			return nil, err
		}
		d, _ := v.decimal()
		return floatResult(f(d.Float64()))
	}
}

func numberArg(c *evalCtx, s *scope, n *funcNode, i int) (Value, bool, error) {
	a, err := n.arg(c, s, i)
	if err != nil {
		return Value{}, false, err
	}
	return numberInput(a, n.name)
}

func fnLog(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	v, ok, err := numberInput(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	b, ok, err := numberArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	x, _ := v.decimal()
	y, _ := b.decimal()
	return floatResult(math.Log(x.Float64()) / math.Log(y.Float64()))
}

func fnPower(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	v, ok, err := numberInput(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	e, ok, err := numberArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	bi, ok1 := v.integer()
	ei, ok2 := e.integer()
	if ok1 && ok2 && ei >= 0 && ei < 1<<16 {
		if bits := big.NewInt(bi).BitLen(); bits > 1 && int64(bits-1)*ei > 64 {
			return nil, evalErr("power(): integer overflow")
		}
		p := new(big.Int).Exp(big.NewInt(bi), big.NewInt(ei), nil)
		if p.IsInt64() {
			return intColl(p.Int64()), nil
		}
		return nil, evalErr("power(): integer overflow")
	}
	x, _ := v.decimal()
	y, _ := e.decimal()
	return floatResult(math.Pow(x.Float64(), y.Float64()))
}

func fnRound(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	v, ok, err := numberInput(focus, n.name)
	if err != nil || !ok {
		return nil, err
	}
	prec := int64(0)
	if len(n.args) > 0 {
		p, ok, err := intArg(c, s, n, 0)
		if err != nil {
			return nil, err
		}
		if ok {
			if p < 0 || p > 100 {
				return nil, evalErr("round(): precision %d out of range", p)
			}
			prec = p
		}
	}
	d, _ := v.decimal()
	return decColl(d.round(int(prec))), nil
}

// tree navigation

// childrenOf appends the child elements of v to out, in key order.
func childrenOf(v *Value, out Collection) Collection {
	m, ok := v.data.(map[string]any)
	if !ok {
		return out
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k == "resourceType" || k == "" {
			continue
		}
		if k[0] == '_' {
			if _, has := m[k[1:]]; has {
				continue
			}
			k = k[1:]
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	td := v.typeDef()
	for _, k := range keys {
		typ := ""
		if td != nil {
			if ed := td.element(k); ed != nil && !ed.choice {
				typ = ed.types[0]
			} else {
				typ = choiceKeyType(td, k)
			}
		}
		out = emit(out, v, m, k, m[k], typ, nil)
	}
	return out
}

// choiceKeyType finds the type of a choice element's JSON key such as valueQuantity.
func choiceKeyType(td *typeDef, key string) string {
	for x := td; x != nil; x = x.base {
		for _, ed := range x.elems {
			if !ed.choice || !strings.HasPrefix(key, ed.name) {
				continue
			}
			for i, k := range ed.keys {
				if k == key {
					return ed.types[i]
				}
			}
		}
	}
	return ""
}

func fnChildren(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	var out Collection
	for i := range focus {
		out = childrenOf(&focus[i], out)
	}
	return out, nil
}

func fnDescendants(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	var out Collection
	current := focus
	for depth := 0; len(current) > 0; depth++ {
		if depth > c.maxDepth {
			return nil, fmt.Errorf("%w: %w: descendants() deeper than %d", ErrEvaluation, ErrLimit, c.maxDepth)
		}
		var next Collection
		for i := range current {
			next = childrenOf(&current[i], next)
		}
		out = append(out, next...)
		if err := c.checkItems(len(out)); err != nil {
			return nil, err
		}
		current = next
	}
	return out, nil
}

// utility

func fnTrace(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	// Tracing output would carry PHI; the arguments are checked and the input passes through.
	if _, err := n.arg(c, s, 0); err != nil {
		return nil, err
	}
	return focus, nil
}

func fnNow(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	return Collection{sysValue(temporalFromTime(c.nowTime(), kindDateTime, PrecMillisecond))}, nil
}

func fnToday(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	t := temporalFromTime(c.nowTime(), kindDate, PrecDay)
	t.hasTZ = false
	return Collection{sysValue(t)}, nil
}

func fnTimeOfDay(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	t := temporalFromTime(c.nowTime(), kindTime, PrecMillisecond)
	t.hasTZ = false
	return Collection{sysValue(t)}, nil
}

func fnNot(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(focus) > 1 {
		// A collection of several items is true in a boolean context, so its negation is false.
		return boolColl(false), nil
	}
	t, err := toTri(focus, "not")
	if err != nil || t < 0 {
		return nil, err
	}
	return boolColl(t == 0), nil
}

// FHIR additions

func fnExtension(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	url, ok, err := stringArg(c, s, n, 0)
	if err != nil || !ok {
		return nil, err
	}
	exts := navigate(focus, "extension", nil)
	var out Collection
	for _, e := range exts {
		if m, ok := e.data.(map[string]any); ok && m["url"] == url {
			out = append(out, e)
		}
	}
	return out, nil
}

func fnHasValue(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(focus) != 1 {
		return boolColl(false), nil
	}
	v := focus[0]
	return boolColl(v.data != nil && v.kindOf() != sysNone && v.kindOf() != sysQuantity), nil
}

func fnGetValue(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(focus) != 1 {
		return nil, nil
	}
	v := focus[0]
	if v.data == nil {
		return nil, nil
	}
	switch v.kindOf() {
	case sysBoolean:
		return Collection{sysValue(v.data)}, nil
	case sysString:
		str, _ := v.toStringValue()
		return strColl(str), nil
	case sysInteger:
		i, ok := v.integer()
		if ok {
			return intColl(i), nil
		}
	case sysDecimal:
		d, ok := v.decimal()
		if ok {
			return decColl(d), nil
		}
	case sysDate, sysDateTime, sysTime:
		t, ok := v.temporal()
		if ok {
			return Collection{sysValue(t)}, nil
		}
	}
	return nil, nil
}

func fnHTMLChecks(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	return boolColl(true), nil
}

func fnResolve(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	var out Collection
	for i := range focus {
		if v, ok := resolveRef(c, &focus[i]); ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// resolveRef resolves a Reference (or a reference string) to a resource.
func resolveRef(c *evalCtx, v *Value) (Value, bool) {
	var ref string
	switch d := v.data.(type) {
	case map[string]any:
		r, ok := d["reference"].(string)
		if !ok {
			return Value{}, false
		}
		ref = r
	case string:
		ref = d
	default:
		return Value{}, false
	}
	if ref == "" {
		return Value{}, false
	}
	if strings.HasPrefix(ref, "#") {
		return resolveContained(c, v, ref[1:])
	}
	if r, ok := resolveInBundle(c, v, ref); ok {
		return r, true
	}
	if c.env.Resolve != nil {
		r, ok := c.env.Resolve(ref)
		if !ok || r == nil {
			return Value{}, false
		}
		if rv, ok := r.(Value); ok {
			return rv, true
		}
		return NewValue(r), true
	}
	typ, id, ok := parseLiteralReference(ref)
	if !ok {
		return Value{}, false
	}
	return Value{data: map[string]any{"resourceType": typ, "id": id}, typ: typ, index: -1}, true
}

// parseLiteralReference finds Type/id in a relative or absolute reference
// (ignoring a trailing _history/version and a canonical |version).
func parseLiteralReference(ref string) (typ, id string, ok bool) {
	if i := strings.IndexByte(ref, '|'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.IndexAny(ref, "?#"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if n := len(parts); n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
	}
	n := len(parts)
	if n < 2 || parts[n-1] == "" || !isResourceType(parts[n-2]) {
		return "", "", false
	}
	return parts[n-2], parts[n-1], true
}

// containerOf finds the resource that holds v (the nearest ancestor with a
// resourceType), falling back to %resource.
func containerOf(c *evalCtx, v *Value) (map[string]any, *Value) {
	var best *Value
	for p := v; p != nil; p = p.parent {
		if m, ok := p.data.(map[string]any); ok {
			if _, ok := m["resourceType"]; ok {
				if _, has := m["contained"]; has || best == nil {
					if p.key != "contained" {
						best = p
						if has {
							break
						}
					}
				}
			}
		}
	}
	if best != nil {
		m, _ := best.data.(map[string]any)
		return m, best
	}
	if len(c.resource) == 1 {
		m, _ := c.resource[0].data.(map[string]any)
		return m, &c.resource[0]
	}
	return nil, nil
}

func resolveContained(c *evalCtx, v *Value, id string) (Value, bool) {
	m, holder := containerOf(c, v)
	if m == nil {
		return Value{}, false
	}
	if id == "" {
		return *holder, true
	}
	arr, _ := m["contained"].([]any)
	for i, x := range arr {
		if r, ok := x.(map[string]any); ok && r["id"] == id {
			return Value{data: r, typ: itemType(r, "Resource"), parent: holder, key: "contained", index: i}, true
		}
	}
	return Value{}, false
}

// resolveInBundle looks the reference up among the entries of an enclosing
// Bundle (or %rootResource when it is a Bundle).
func resolveInBundle(c *evalCtx, v *Value, ref string) (Value, bool) {
	var bundle *Value
	for p := v; p != nil; p = p.parent {
		if p.typ == "Bundle" {
			bundle = p
		}
	}
	if bundle == nil && len(c.rootRes) == 1 && c.rootRes[0].typ == "Bundle" {
		bundle = &c.rootRes[0]
	}
	if bundle == nil {
		return Value{}, false
	}
	m, _ := bundle.data.(map[string]any)
	entries, _ := m["entry"].([]any)
	for _, e := range entries {
		em, ok := e.(map[string]any)
		if !ok {
			continue
		}
		full, _ := em["fullUrl"].(string)
		if full == "" {
			continue
		}
		if full == ref || (!strings.Contains(ref, ":") && strings.HasSuffix(full, "/"+ref)) {
			if r, ok := em["resource"].(map[string]any); ok {
				return Value{data: r, typ: itemType(r, "Resource"), index: -1}, true
			}
		}
	}
	return Value{}, false
}

// fnSum adds numbers (or quantities) of the input; empty input gives empty.
func fnSum(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(focus) == 0 {
		return nil, nil
	}
	total := focus[:1:1]
	for i := 1; i < len(focus); i++ {
		r, err := arithmetic("+", total, focus[i:i+1:i+1])
		if err != nil {
			return nil, err
		}
		total = r
	}
	if k := total[0].kindOf(); k != sysInteger && k != sysDecimal && k != sysQuantity {
		return nil, evalErr("sum() needs numbers or quantities, found %s", typeLabel(total[0]))
	}
	return toSystem(total), nil
}

// toSystem turns a single FHIR primitive into its System value.
func toSystem(c Collection) Collection {
	if len(c) != 1 || isSystemType(c[0].typ) {
		return c
	}
	v := c[0]
	switch v.kindOf() {
	case sysInteger:
		if i, ok := v.integer(); ok {
			return intColl(i)
		}
	case sysDecimal:
		if d, ok := v.decimal(); ok {
			return decColl(d)
		}
	case sysQuantity:
		if q, ok := v.quantity(); ok {
			return Collection{sysValue(q)}
		}
	}
	return c
}

func fnMinMax(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	if len(focus) == 0 {
		return nil, nil
	}
	best := focus[0]
	for _, v := range focus[1:] {
		cmp, ok, err := compareItems(v, best)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil
		}
		if (n.name == "min" && cmp < 0) || (n.name == "max" && cmp > 0) {
			best = v
		}
	}
	return Collection{best}, nil
}

func fnAvg(c *evalCtx, s *scope, focus Collection, n *funcNode) (Collection, error) {
	sum, err := fnSum(c, s, focus, n)
	if err != nil || len(sum) == 0 {
		return nil, err
	}
	return arithmetic("/", sum, intColl(int64(len(focus))))
}
