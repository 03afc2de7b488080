package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil/fhirpath"
)

// maxSubstitutionDepth bounds nested variable substitution (a fixture body that uses a
// variable whose source is a fixture that uses a variable ...).
const maxSubstitutionDepth = 8

// substitute replaces every ${name} in s with the value lookup gives. With jsonEscape, the
// values are escaped for use inside a JSON string (fixture bodies). Unknown names are an
// error unless keepUnknown is set, in which case they are left as written.
func substitute(s string, lookup func(name string) (string, bool, error), jsonEscape, keepUnknown bool) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		j := strings.IndexByte(s[i+2:], '}')
		if j < 0 {
			b.WriteString(s)
			break
		}
		name := s[i+2 : i+2+j]
		b.WriteString(s[:i])
		v, known, err := lookup(name)
		switch {
		case err != nil:
			return "", err
		case !known && keepUnknown:
			b.WriteString(s[i : i+3+j])
		case !known:
			return "", fmt.Errorf("unknown variable ${%s}", name)
		case jsonEscape:
			b.WriteString(jsonEscapeString(v))
		default:
			b.WriteString(v)
		}
		s = s[i+3+j:]
	}
	return b.String(), nil
}

// jsonEscapeString escapes v for the inside of a JSON string literal.
func jsonEscapeString(v string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	out := strings.TrimSpace(buf.String())
	return out[1 : len(out)-1]
}

// parseTree decodes a JSON body into the tree fhirpath evaluates.
func parseTree(body []byte) (any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("the body is empty")
	}
	t, err := fhirpath.ParseJSON(body)
	if err != nil {
		return nil, fmt.Errorf("the body is not JSON: %w", err)
	}
	return t, nil
}

// evalFHIRPath evaluates expr on tree and returns the string forms of the result.
func evalFHIRPath(expr string, tree any, vars map[string]fhirpath.Collection) (fhirpath.Collection, error) {
	e, err := fhirpath.Compile(expr)
	if err != nil {
		return nil, err
	}
	return e.Evaluate(tree, &fhirpath.Env{Vars: vars})
}

// collectionStrings renders the items of a FHIRPath result as strings.
func collectionStrings(c fhirpath.Collection) []string {
	out := make([]string, 0, len(c))
	for _, v := range c {
		out = append(out, nodeString(v.Data()))
	}
	return out
}

// nodeString renders a JSON node or computed value as a string: primitives as their
// lexical form, objects and arrays as compact JSON.
func nodeString(d any) string {
	switch x := d.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
	if s, ok := d.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprint(d)
}

// evalPath evaluates a JSONPath-style ($.a.b[0], $['a'], $.a[*].b), dotted FHIRPath-like
// (Patient.name[0].family, name.given) or XPath-like (fhir:Patient/fhir:name/fhir:family/@value,
// Patient/id) path on tree. Arrays met without an index are
// flattened, as in FHIRPath. A leading segment equal to the resource type is skipped.
func evalPath(path string, tree any) ([]any, error) {
	segs, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	cur := []any{tree}
	if len(segs) > 0 {
		if m, ok := tree.(map[string]any); ok {
			if rt, _ := m["resourceType"].(string); rt != "" && segs[0].name == rt && segs[0].index == nil && !segs[0].all {
				if _, has := m[rt]; !has {
					segs = segs[1:]
				}
			}
		}
	}
	for _, s := range segs {
		var next []any
		for _, n := range cur {
			var vals []any
			if s.name == "" {
				vals = []any{n}
			} else {
				m, ok := n.(map[string]any)
				if !ok {
					continue
				}
				v, ok := m[s.name]
				if !ok {
					continue
				}
				vals = []any{v}
			}
			for _, v := range vals {
				arr, isArr := v.([]any)
				switch {
				case s.index != nil:
					if isArr && *s.index >= 0 && *s.index < len(arr) {
						next = append(next, arr[*s.index])
					} else if !isArr && *s.index == 0 && s.name != "" {
						next = append(next, v)
					}
				case isArr:
					next = append(next, arr...)
				default:
					next = append(next, v)
				}
			}
		}
		cur = next
	}
	return cur, nil
}

type pathSeg struct {
	name  string
	index *int
	all   bool
}

func splitPath(p string) ([]pathSeg, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return nil, fmt.Errorf("empty path")
	}
	if strings.HasPrefix(p, "$") {
		p = strings.TrimPrefix(p, "$")
		p = strings.TrimPrefix(p, ".")
	} else if strings.Contains(p, "/") {
		return splitXPath(p)
	}
	var segs []pathSeg
	i := 0
	for i < len(p) {
		switch p[i] {
		case '.':
			i++
			continue
		case '[':
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("path %q: unclosed [", p)
			}
			inner := strings.TrimSpace(p[i+1 : i+end])
			i += end + 1
			switch {
			case inner == "*":
				if len(segs) == 0 {
					segs = append(segs, pathSeg{all: true})
				} else {
					segs[len(segs)-1].all = true
				}
			case len(inner) >= 2 && (inner[0] == '\'' || inner[0] == '"') && inner[len(inner)-1] == inner[0]:
				segs = append(segs, pathSeg{name: inner[1 : len(inner)-1]})
			default:
				n, err := strconv.Atoi(inner)
				if err != nil {
					return nil, fmt.Errorf("path %q: bad index [%s]", p, inner)
				}
				if len(segs) == 0 || segs[len(segs)-1].index != nil {
					segs = append(segs, pathSeg{})
				}
				segs[len(segs)-1].index = &n
			}
		default:
			j := i
			for j < len(p) && p[j] != '.' && p[j] != '[' {
				j++
			}
			segs = append(segs, pathSeg{name: p[i:j]})
			i = j
		}
	}
	return segs, nil
}

// splitXPath reads the XPath form of TestScript paths written for XML
// (fhir:Patient/fhir:name[1]/fhir:family/@value) as the same navigation on JSON: fhir:
// prefixes dropped, @value meaning the primitive itself, [n] counted from 1.
func splitXPath(p string) ([]pathSeg, error) {
	var segs []pathSeg
	for _, step := range strings.Split(p, "/") {
		step = strings.TrimSpace(step)
		if step == "" || step == "@value" {
			continue
		}
		step = strings.TrimPrefix(step, "@")
		name, pred, hasPred := strings.Cut(step, "[")
		seg := pathSeg{name: strings.TrimPrefix(name, "fhir:")}
		if hasPred {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(pred, "]")))
			if err != nil || !strings.HasSuffix(pred, "]") || n < 1 {
				return nil, fmt.Errorf("path %q: only positional predicates such as [1] are supported", p)
			}
			n--
			seg.index = &n
		}
		if seg.name == "" || strings.ContainsAny(seg.name, "()=*") {
			return nil, fmt.Errorf("path %q: step %q is not supported (use a FHIRPath expression)", p, step)
		}
		segs = append(segs, seg)
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("path %q selects nothing", p)
	}
	return segs, nil
}

// pathStrings evaluates path on tree and renders the results.
func pathStrings(path string, tree any) ([]string, error) {
	nodes, err := evalPath(path, tree)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, nodeString(n))
	}
	return out, nil
}

// compare applies a TestScript assert operator to actual (the rendered result, nil for
// nothing) and expected (the assert's value). It returns whether the assert holds and, when
// it does not, a message naming expected and actual.
func compare(op string, actual []string, expected string) (bool, string) {
	show := showValues(actual)
	switch op {
	case "", "equals":
		if len(actual) == 1 && actual[0] == expected {
			return true, ""
		}
		return false, fmt.Sprintf("expected %q, got %s", expected, show)
	case "notEquals":
		if len(actual) == 1 && actual[0] == expected {
			return false, fmt.Sprintf("expected a value other than %q, got %s", expected, show)
		}
		return true, ""
	case "in":
		set := splitList(expected)
		if len(actual) == 0 {
			return false, fmt.Sprintf("expected a value in [%s], got nothing", strings.Join(set, ", "))
		}
		for _, a := range actual {
			if !contains(set, a) {
				return false, fmt.Sprintf("expected a value in [%s], got %s", strings.Join(set, ", "), show)
			}
		}
		return true, ""
	case "notIn":
		set := splitList(expected)
		for _, a := range actual {
			if contains(set, a) {
				return false, fmt.Sprintf("expected no value in [%s], got %s", strings.Join(set, ", "), show)
			}
		}
		return true, ""
	case "greaterThan", "lessThan":
		if len(actual) != 1 {
			return false, fmt.Sprintf("expected one value %s %q, got %s", opWord(op), expected, show)
		}
		c, ok := compareOrdered(actual[0], expected)
		if !ok {
			return false, fmt.Sprintf("cannot compare %q with %q", actual[0], expected)
		}
		if op == "greaterThan" && c > 0 || op == "lessThan" && c < 0 {
			return true, ""
		}
		return false, fmt.Sprintf("expected a value %s %q, got %s", opWord(op), expected, show)
	case "empty":
		if len(actual) == 0 || len(actual) == 1 && actual[0] == "" {
			return true, ""
		}
		return false, fmt.Sprintf("expected nothing, got %s", show)
	case "notEmpty":
		if len(actual) == 0 || len(actual) == 1 && actual[0] == "" {
			return false, "expected a value, got nothing"
		}
		return true, ""
	case "contains":
		for _, a := range actual {
			if strings.Contains(a, expected) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("expected a value containing %q, got %s", expected, show)
	case "notContains":
		for _, a := range actual {
			if strings.Contains(a, expected) {
				return false, fmt.Sprintf("expected no value containing %q, got %s", expected, show)
			}
		}
		return true, ""
	}
	return false, fmt.Sprintf("unknown operator %q", op)
}

func opWord(op string) string {
	if op == "greaterThan" {
		return "greater than"
	}
	return "less than"
}

// compareOrdered compares two values as numbers when both are numbers, else as strings
// (ISO 8601 dates and instants of one precision order correctly as strings).
func compareOrdered(a, b string) (int, bool) {
	ra, okA := new(big.Rat).SetString(strings.TrimSpace(a))
	rb, okB := new(big.Rat).SetString(strings.TrimSpace(b))
	if okA && okB {
		return ra.Cmp(rb), true
	}
	if okA != okB {
		return 0, false
	}
	return strings.Compare(a, b), true
}

func splitList(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func contains(set []string, v string) bool {
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
}

// showValues renders actual values for a failure message, shortened.
func showValues(vs []string) string {
	if len(vs) == 0 {
		return "nothing"
	}
	const max = 5
	parts := make([]string, 0, len(vs))
	for i, v := range vs {
		if i == max {
			parts = append(parts, fmt.Sprintf("... (%d more)", len(vs)-max))
			break
		}
		parts = append(parts, strconv.Quote(truncate(v, 200)))
	}
	if len(vs) == 1 {
		return parts[0]
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// containsMinimum reports whether actual holds at least the elements of min: objects must
// hold every property of min (recursively), arrays every item of min (each matching some
// item of actual, in any order), primitives must be equal. It returns the path of the
// first element missing.
func containsMinimum(min, actual any, path string) (bool, string) {
	switch m := min.(type) {
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return false, path
		}
		keys := sortedKeys(m)
		for _, k := range keys {
			av, ok := a[k]
			if !ok {
				return false, joinPath(path, k)
			}
			if ok, p := containsMinimum(m[k], av, joinPath(path, k)); !ok {
				return false, p
			}
		}
		return true, ""
	case []any:
		a, ok := actual.([]any)
		if !ok {
			return false, path
		}
		for i, item := range m {
			found := false
			for _, ai := range a {
				if ok, _ := containsMinimum(item, ai, ""); ok {
					found = true
					break
				}
			}
			if !found {
				return false, fmt.Sprintf("%s[%d]", path, i)
			}
		}
		return true, ""
	}
	if primitiveEqual(min, actual) {
		return true, ""
	}
	return false, path
}

func primitiveEqual(a, b any) bool {
	an, aNum := a.(json.Number)
	bn, bNum := b.(json.Number)
	if aNum && bNum {
		ra, ok1 := new(big.Rat).SetString(an.String())
		rb, ok2 := new(big.Rat).SetString(bn.String())
		return ok1 && ok2 && ra.Cmp(rb) == 0
	}
	return a == b
}

func joinPath(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
