package fhirpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Patch errors. Every error of ApplyPatch is a *PatchError that wraps one of
// these: ErrPatchInvalid for a malformed Parameters document (HTTP 400) and
// ErrPatchUnprocessable for a well-formed patch that cannot be applied to
// the resource (HTTP 422).
var (
	ErrPatchInvalid       = errors.New("fhirpath: invalid patch")
	ErrPatchUnprocessable = errors.New("fhirpath: patch cannot be applied")
)

// PatchError describes why an operation of a FHIRPath Patch failed.
type PatchError struct {
	// Operation is the position of the failing operation in the Parameters
	// (0-based), or -1 when the document as a whole is wrong.
	Operation int
	// Path is the operation's FHIRPath, for OperationOutcome.expression.
	Path string
	// Kind is ErrPatchInvalid or ErrPatchUnprocessable.
	Kind error
	// Msg is a client-safe description (it contains no resource content).
	Msg string
	// Err is the underlying cause, if any.
	Err error
}

// Error implements error.
func (e *PatchError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Operation >= 0 {
		fmt.Fprintf(&b, ": operation %d", e.Operation)
	}
	if e.Path != "" {
		fmt.Fprintf(&b, " (%s)", e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the kind and the cause.
func (e *PatchError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

type patchOp struct {
	typ, path, name string
	value           any
	valueKey        string // the value[x] key, e.g. valueString ("" for part-based values)
	hasValue        bool
	index           *int
	source          *int
	destination     *int
}

// ApplyPatch applies a FHIRPath Patch (a decoded FHIR Parameters resource,
// https://hl7.org/fhir/R4/fhirpatch.html) to a decoded resource and returns
// the patched copy; resource itself is not modified. Operations are add,
// insert, delete, replace and move, applied in order.
func ApplyPatch(resource any, patch any) (result any, err error) {
	defer func() {
		// A patch never panics the server; a bug here becomes a 422.
		if r := recover(); r != nil {
			result, err = nil, &PatchError{Operation: -1, Kind: ErrPatchUnprocessable, Msg: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	ops, err := parsePatch(patch)
	if err != nil {
		return nil, err
	}
	if _, ok := resource.(map[string]any); !ok {
		return nil, &PatchError{Operation: -1, Kind: ErrPatchUnprocessable, Msg: "the resource is not a JSON object"}
	}
	doc := deepCopy(resource)
	for i, op := range ops {
		if err := applyOp(doc, op); err != nil {
			err.Operation = i
			err.Path = op.path
			return nil, err
		}
	}
	return doc, nil
}

func invalid(op int, msg string, args ...any) *PatchError {
	return &PatchError{Operation: op, Kind: ErrPatchInvalid, Msg: fmt.Sprintf(msg, args...)}
}

func unprocessable(msg string, args ...any) *PatchError {
	return &PatchError{Operation: -1, Kind: ErrPatchUnprocessable, Msg: fmt.Sprintf(msg, args...)}
}

func parsePatch(patch any) ([]patchOp, error) {
	p, ok := patch.(map[string]any)
	if !ok || p["resourceType"] != "Parameters" {
		return nil, invalid(-1, "a FHIRPath Patch must be a Parameters resource")
	}
	params, _ := p["parameter"].([]any)
	var ops []patchOp
	for i, x := range params {
		pm, ok := x.(map[string]any)
		if !ok || pm["name"] != "operation" {
			return nil, invalid(i, "parameter %d is not named 'operation'", i)
		}
		parts, _ := pm["part"].([]any)
		var op patchOp
		for _, y := range parts {
			part, ok := y.(map[string]any)
			if !ok {
				return nil, invalid(i, "part is not an object")
			}
			name, _ := part["name"].(string)
			switch name {
			case "type", "path", "name":
				s, ok := part["valueCode"].(string)
				if !ok {
					s, ok = part["valueString"].(string)
				}
				if !ok {
					return nil, invalid(i, "part %q needs a string value", name)
				}
				switch name {
				case "type":
					op.typ = s
				case "path":
					op.path = s
				default:
					op.name = s
				}
			case "index", "source", "destination":
				n, ok := intPart(part)
				if !ok {
					return nil, invalid(i, "part %q needs an integer value", name)
				}
				switch name {
				case "index":
					op.index = &n
				case "source":
					op.source = &n
				default:
					op.destination = &n
				}
			case "value":
				v, key, ok := partValue(part)
				if !ok {
					return nil, invalid(i, "part 'value' has no value")
				}
				op.value, op.valueKey, op.hasValue = v, key, true
			default:
				return nil, invalid(i, "unknown part %q", name)
			}
		}
		if op.path == "" {
			return nil, invalid(i, "operation has no path")
		}
		need := func(cond bool, what string) error {
			if !cond {
				return invalid(i, "%s operation needs %s", op.typ, what)
			}
			return nil
		}
		var err error
		switch op.typ {
		case "add":
			if err = need(op.name != "", "a name"); err == nil {
				err = need(op.hasValue, "a value")
			}
		case "insert":
			if err = need(op.index != nil, "an index"); err == nil {
				err = need(op.hasValue, "a value")
			}
		case "delete":
		case "replace":
			err = need(op.hasValue, "a value")
		case "move":
			err = need(op.source != nil && op.destination != nil, "a source and a destination")
		default:
			return nil, invalid(i, "unknown operation type %q", op.typ)
		}
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func intPart(part map[string]any) (int, bool) {
	for _, k := range []string{"valueInteger", "valueUnsignedInt", "valuePositiveInt"} {
		switch n := part[k].(type) {
		case json.Number:
			i, err := n.Int64()
			if err == nil && i >= 0 && i < 1<<31 {
				return int(i), true
			}
		case float64:
			if n >= 0 && n < 1<<31 && n == float64(int(n)) {
				return int(n), true
			}
		case int:
			return n, n >= 0
		}
	}
	return 0, false
}

// partValue returns the value of a 'value' part: its value[x], or a complex
// value built from its parts.
func partValue(part map[string]any) (any, string, bool) {
	for k, v := range part {
		if strings.HasPrefix(k, "value") && len(k) > 5 {
			return deepCopy(v), k, true
		}
	}
	if sub, ok := part["part"].([]any); ok {
		return buildFromParts(sub), "", true
	}
	return nil, "", false
}

// buildFromParts turns parts into a JSON object; repeated names become arrays.
func buildFromParts(parts []any) map[string]any {
	out := map[string]any{}
	for _, y := range parts {
		p, ok := y.(map[string]any)
		if !ok {
			continue
		}
		name, _ := p["name"].(string)
		if name == "" {
			continue
		}
		v, _, ok := partValue(p)
		if !ok {
			continue
		}
		if prev, exists := out[name]; exists {
			if arr, isArr := prev.([]any); isArr {
				out[name] = append(arr, v)
			} else {
				out[name] = []any{prev, v}
			}
			continue
		}
		out[name] = v
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e)
		}
		return a
	}
	return v
}

// matchPath evaluates a patch path on doc.
func matchPath(doc map[string]any, path string) (Collection, *PatchError) {
	expr, err := Compile(path)
	if err != nil {
		return nil, &PatchError{Kind: ErrPatchInvalid, Msg: "invalid path", Err: err}
	}
	res, err := expr.Evaluate(doc, nil)
	if err != nil {
		return nil, &PatchError{Kind: ErrPatchUnprocessable, Msg: "path cannot be evaluated", Err: err}
	}
	return res, nil
}

// location is where a matched node lives: parent map, key and array index.
type location struct {
	parent map[string]any
	key    string
	index  int
	typ    string
}

func locate(v Value) (location, bool) {
	if v.parent == nil || v.data == nil {
		return location{}, false
	}
	pm, ok := v.parent.data.(map[string]any)
	if !ok {
		return location{}, false
	}
	return location{parent: pm, key: v.key, index: v.index, typ: v.typ}, true
}

func applyOp(doc any, op patchOp) *PatchError {
	root := doc.(map[string]any)
	switch op.typ {
	case "add":
		return applyAdd(root, op)
	case "insert", "move":
		return applyListOp(root, op)
	}
	res, perr := matchPath(root, op.path)
	if perr != nil {
		return perr
	}
	if len(res) > 1 {
		return unprocessable("path matches %d elements; it must match one", len(res))
	}
	if len(res) == 0 {
		if op.typ == "delete" {
			return nil // deleting what is not there is allowed
		}
		return unprocessable("path matches nothing")
	}
	loc, ok := locate(res[0])
	if !ok {
		return unprocessable("path does not select an element of the resource")
	}
	switch op.typ {
	case "delete":
		deleteAt(loc)
		return nil
	default: // replace
		if err := checkValueType(loc.typ, op); err != nil {
			return err
		}
		key := loc.key
		if op.valueKey != "" && isChoiceKey(res[0]) {
			// Replacing a choice element may change its type: valueQuantity -> valueString.
			newKey := choiceBase(res[0]) + strings.TrimPrefix(op.valueKey, "value")
			if newKey != key {
				delete(loc.parent, key)
				delete(loc.parent, "_"+key)
				loc.parent[newKey] = op.value
				return nil
			}
		}
		if loc.index >= 0 {
			arr, _ := loc.parent[key].([]any)
			if loc.index >= len(arr) {
				return unprocessable("element vanished")
			}
			arr[loc.index] = op.value
		} else {
			loc.parent[key] = op.value
		}
		return nil
	}
}

// isChoiceKey reports whether v was found under a choice element (value[x]).
func isChoiceKey(v Value) bool { return choiceBase(v) != "" }

// choiceBase returns the element name of a choice key ("value" for
// "valueQuantity"), or "".
func choiceBase(v Value) string {
	if v.parent == nil {
		return ""
	}
	td := lookupType(v.parent.typ)
	if td == nil {
		return ""
	}
	for x := td; x != nil; x = x.base {
		for _, ed := range x.elems {
			if !ed.choice {
				continue
			}
			for _, k := range ed.keys {
				if k == v.key {
					return ed.name
				}
			}
		}
	}
	return ""
}

// checkValueType rejects a value[x] whose type cannot stand for elemType.
func checkValueType(elemType string, op patchOp) *PatchError {
	if op.valueKey == "" || elemType == "" {
		return nil
	}
	vt := strings.TrimPrefix(op.valueKey, "value")
	if vt == "" {
		return nil
	}
	// value[x] names start upper case: valueString -> string, valueCoding -> Coding.
	lower := strings.ToLower(vt[:1]) + vt[1:]
	td := lookupType(elemType)
	if td == nil {
		return nil
	}
	if td.kind == kindPrimitive {
		_, isMap := op.value.(map[string]any)
		if isMap {
			return unprocessable("a %s element cannot take a %s value", elemType, vt)
		}
		return nil
	}
	if derivesFrom(vt, elemType) || derivesFrom(lower, elemType) || elemType == vt {
		return nil
	}
	if td.kind == kindBackbone {
		return nil
	}
	return unprocessable("a %s element cannot take a %s value", elemType, vt)
}

func deleteAt(loc location) {
	if loc.index < 0 {
		delete(loc.parent, loc.key)
		delete(loc.parent, "_"+loc.key)
		return
	}
	arr, _ := loc.parent[loc.key].([]any)
	if loc.index >= len(arr) {
		return
	}
	arr = append(arr[:loc.index:loc.index], arr[loc.index+1:]...)
	if ext, ok := loc.parent["_"+loc.key].([]any); ok && loc.index < len(ext) {
		ext = append(ext[:loc.index:loc.index], ext[loc.index+1:]...)
		loc.parent["_"+loc.key] = ext
	}
	if len(arr) == 0 {
		delete(loc.parent, loc.key)
		delete(loc.parent, "_"+loc.key)
		return
	}
	loc.parent[loc.key] = arr
}

func applyAdd(root map[string]any, op patchOp) *PatchError {
	res, perr := matchPath(root, op.path)
	if perr != nil {
		return perr
	}
	if len(res) == 0 {
		return unprocessable("path matches nothing")
	}
	if len(res) > 1 {
		return unprocessable("path matches %d elements; it must match one", len(res))
	}
	target, ok := res[0].data.(map[string]any)
	if !ok {
		return unprocessable("path does not select an element that can have children")
	}
	key, array, elemType := op.name, false, ""
	if td := lookupType(res[0].typ); td != nil {
		ed := td.element(op.name)
		if ed == nil {
			if choiceKeyType(td, op.name) == "" {
				return unprocessable("%s has no element %q", res[0].typ, op.name)
			}
		} else {
			array = ed.array
			if ed.choice {
				if op.valueKey == "" {
					return unprocessable("element %q is a choice and needs a value[x]", op.name)
				}
				key = op.name + strings.TrimPrefix(op.valueKey, "value")
			} else {
				elemType = ed.types[0]
			}
		}
	}
	if err := checkValueType(elemType, op); err != nil {
		return err
	}
	existing, exists := target[key]
	if arr, isArr := existing.([]any); isArr {
		target[key] = append(arr, op.value)
		return nil
	}
	if exists {
		return unprocessable("element %q already exists and does not repeat", op.name)
	}
	if array {
		target[key] = []any{op.value}
	} else {
		target[key] = op.value
	}
	return nil
}

// splitListPath splits "X.y.list" into the parent expression and the list's
// element name.
func splitListPath(path string) (string, string, bool) {
	p := strings.TrimSpace(path)
	i := strings.LastIndexByte(p, '.')
	if i <= 0 {
		return "", "", false
	}
	name := p[i+1:]
	for j := 0; j < len(name); j++ {
		if !isIdentPart(name[j]) {
			return "", "", false
		}
	}
	if name == "" || !isIdentStart(name[0]) {
		return "", "", false
	}
	return p[:i], name, true
}

func applyListOp(root map[string]any, op patchOp) *PatchError {
	parentPath, name, ok := splitListPath(op.path)
	if !ok {
		return &PatchError{Kind: ErrPatchInvalid, Msg: "path must end in the name of a list element"}
	}
	res, perr := matchPath(root, parentPath)
	if perr != nil {
		return perr
	}
	if len(res) != 1 {
		return unprocessable("the list's parent matches %d elements; it must match one", len(res))
	}
	parent, ok := res[0].data.(map[string]any)
	if !ok {
		return unprocessable("path does not select a list")
	}
	if td := lookupType(res[0].typ); td != nil {
		ed := td.element(name)
		if ed == nil || !ed.array {
			return unprocessable("%s.%s is not a list", res[0].typ, name)
		}
		if op.typ == "insert" {
			if err := checkValueType(ed.types[0], op); err != nil {
				return err
			}
		}
	}
	arr, _ := parent[name].([]any)
	ext, hasExt := parent["_"+name].([]any)
	if op.typ == "insert" {
		idx := *op.index
		if idx > len(arr) {
			return unprocessable("index %d is beyond the list of %d elements", idx, len(arr))
		}
		out := make([]any, 0, len(arr)+1)
		out = append(append(append(out, arr[:idx]...), op.value), arr[idx:]...)
		parent[name] = out
		if hasExt && idx <= len(ext) {
			e := make([]any, 0, len(ext)+1)
			parent["_"+name] = append(append(append(e, ext[:idx]...), nil), ext[idx:]...)
		}
		return nil
	}
	src, dst := *op.source, *op.destination
	if src >= len(arr) || dst >= len(arr) {
		return unprocessable("move from %d to %d is outside the list of %d elements", src, dst, len(arr))
	}
	parent[name] = moveItem(arr, src, dst)
	if hasExt && len(ext) == len(arr) {
		parent["_"+name] = moveItem(ext, src, dst)
	}
	return nil
}

func moveItem(arr []any, src, dst int) []any {
	item := arr[src]
	rest := make([]any, 0, len(arr))
	rest = append(append(rest, arr[:src]...), arr[src+1:]...)
	out := make([]any, 0, len(arr))
	out = append(append(append(out, rest[:dst]...), item), rest[dst:]...)
	return out
}
