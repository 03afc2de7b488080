package conformance

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/vigil-health/vigil/fhirpath"
)

// lookupAt returns the variable resolver used by substitute at a nesting depth.
func (x *run) lookupAt(depth int) func(string) (string, bool, error) {
	return func(name string) (string, bool, error) {
		if _, ok := x.vars[name]; !ok {
			return "", false, nil
		}
		v, err := x.variable(name, depth)
		return v, true, err
	}
}

// variable evaluates a declared variable now, against the current content of its source.
func (x *run) variable(name string, depth int) (string, error) {
	if depth > maxSubstitutionDepth {
		return "", fmt.Errorf("variable %s: substitution nested more than %d deep", name, maxSubstitutionDepth)
	}
	v := x.vars[name]
	if v.Expression == "" && v.HeaderField == "" && v.Path == "" {
		return v.DefaultValue, nil
	}
	var d document
	switch {
	case v.SourceID != "":
		var err error
		d, err = x.doc(v.SourceID, depth)
		if err != nil {
			return x.fallback(v, err)
		}
	case x.last != nil:
		d = document{body: x.last.respBody, header: x.last.respHeader, status: x.last.status, hasStatus: true}
	default:
		return x.fallback(v, fmt.Errorf("no sourceId and no response yet"))
	}
	var vals []string
	switch {
	case v.HeaderField != "":
		if hv := d.header.Values(v.HeaderField); len(hv) > 0 {
			vals = []string{strings.Join(hv, ", ")}
		}
	case v.Expression != "":
		tree, err := parseTree(d.body)
		if err != nil {
			return x.fallback(v, err)
		}
		c, err := evalFHIRPath(v.Expression, tree, nil)
		if err != nil {
			return "", fmt.Errorf("variable %s: expression %q: %w", name, v.Expression, err)
		}
		vals = collectionStrings(c)
	case v.Path != "":
		tree, err := parseTree(d.body)
		if err != nil {
			return x.fallback(v, err)
		}
		vals, err = pathStrings(v.Path, tree)
		if err != nil {
			return "", fmt.Errorf("variable %s: %w", name, err)
		}
	}
	if len(vals) == 0 || vals[0] == "" {
		return x.fallback(v, fmt.Errorf("it evaluated to nothing"))
	}
	return vals[0], nil
}

func (x *run) fallback(v *scriptVariable, cause error) (string, error) {
	if v.DefaultValue != "" {
		return v.DefaultValue, nil
	}
	msg := fmt.Sprintf("variable %s has no value: %v", v.Name, cause)
	if v.Hint != "" {
		msg += " (hint: " + v.Hint + ")"
	}
	return "", fmt.Errorf("%s", msg)
}

var percentVar = regexp.MustCompile(`%([A-Za-z_][A-Za-z0-9_]*)`)

// fhirpathVars evaluates the script variables an expression names as %name.
func (x *run) fhirpathVars(expr string) (map[string]fhirpath.Collection, error) {
	var vars map[string]fhirpath.Collection
	for _, m := range percentVar.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		if _, ok := x.vars[name]; !ok {
			continue
		}
		v, err := x.variable(name, 0)
		if err != nil {
			return nil, err
		}
		if vars == nil {
			vars = map[string]fhirpath.Collection{}
		}
		vars[name] = fhirpath.Collection{fhirpath.NewValue(v)}
	}
	return vars, nil
}

// sub substitutes variables in a string of the script (URL, params, header, value).
func (x *run) sub(s string) (string, error) { return substitute(s, x.lookupAt(0), false, false) }

// methods maps the operation type codes to their default HTTP methods.
var methods = map[string]string{
	"read": http.MethodGet, "vread": http.MethodGet, "search": http.MethodGet, "history": http.MethodGet,
	"capabilities": http.MethodGet, "create": http.MethodPost, "update": http.MethodPut,
	"updateCreate": http.MethodPut, "patch": http.MethodPatch, "delete": http.MethodDelete,
	"deleteCondSingle": http.MethodDelete, "deleteCondMultiple": http.MethodDelete,
	"transaction": http.MethodPost, "batch": http.MethodPost,
}

func operationLabel(op *operation) string {
	if op.Label != "" {
		return op.Label
	}
	if op.Description != "" {
		return op.Description
	}
	code := "operation"
	if op.Type != nil && op.Type.Code != "" {
		code = op.Type.Code
	}
	if op.Resource != "" {
		return code + " " + op.Resource
	}
	return code
}

// operation performs one operation.
func (x *run) operation(op *operation) ActionResult {
	ar := ActionResult{Kind: "operation", Label: operationLabel(op)}
	fail := func(err error) ActionResult {
		ar.Result, ar.Message, ar.unsent = ResultError, err.Error(), true
		return ar
	}
	code := ""
	if op.Type != nil {
		code = op.Type.Code
	}
	if code == "" && op.URL == "" && op.Method == "" {
		return fail(fmt.Errorf("the operation has no type, url or method"))
	}
	// The body: the source fixture.
	var body []byte
	srcType, srcID := "", ""
	if op.SourceID != "" {
		d, err := x.doc(op.SourceID, 0)
		if err != nil {
			return fail(fmt.Errorf("sourceId: %w", err))
		}
		body = d.body
		srcType, srcID, _ = resourceIdentity(body)
	}
	method := methods[code]
	if method == "" {
		// $operations and bare URLs: POST what has a body, GET what has none.
		method = http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
	}
	if op.Method != "" {
		method = strings.ToUpper(op.Method)
	}
	u, err := x.operationURL(op, code, srcType, srcID)
	if err != nil {
		return fail(err)
	}
	if method == http.MethodGet || method == http.MethodDelete || method == http.MethodHead {
		body = nil
	}
	h := x.defaultHeaders(u, op.Accept, op.ContentType, body != nil)
	set := map[string]bool{}
	for _, rh := range op.RequestHeader {
		v, err := x.sub(rh.Value)
		if err != nil {
			return fail(fmt.Errorf("requestHeader %s: %w", rh.Field, err))
		}
		if set[http.CanonicalHeaderKey(rh.Field)] {
			h.Add(rh.Field, v)
		} else {
			h.Set(rh.Field, v)
			set[http.CanonicalHeaderKey(rh.Field)] = true
		}
	}
	ex, err := x.send(method, u, body, h)
	if err != nil {
		ar.Result, ar.Message = ResultError, err.Error()
		return ar
	}
	x.last = ex
	if op.ResponseID != "" {
		x.store(op.ResponseID, &fixture{id: op.ResponseID, ex: ex})
	}
	if op.RequestID != "" {
		x.store(op.RequestID, &fixture{id: op.RequestID, ex: ex, isRequest: true})
	}
	describe(&ar, ex)
	ar.Result = ResultPass
	ar.Message = fmt.Sprintf("%s %s: %s", method, u, ex.statusLine())
	return ar
}

// store records a dynamic fixture. A fixture of the same id is replaced, as TestScript
// engines do when a responseId is reused (an autocreated fixture stays in x.created, so its
// autodelete still happens).
func (x *run) store(id string, f *fixture) { x.fixtures[id] = f }

// operationURL builds the request URL of an operation.
func (x *run) operationURL(op *operation, code, srcType, srcID string) (string, error) {
	encode := op.EncodeRequestURL == nil || *op.EncodeRequestURL
	if op.URL != "" {
		u, err := x.sub(op.URL)
		if err != nil {
			return "", fmt.Errorf("url: %w", err)
		}
		if !isAbsoluteURL(u) {
			u = x.base + "/" + strings.TrimPrefix(u, "/")
		}
		return finishURL(u, encode), nil
	}
	params, err := x.sub(op.Params)
	if err != nil {
		return "", fmt.Errorf("params: %w", err)
	}
	typ := op.Resource
	if typ == "" {
		typ = srcType
	}
	var tTyp, tID, tVer string
	if op.TargetID != "" {
		f, ok := x.fixtures[op.TargetID]
		if !ok {
			return "", fmt.Errorf("targetId: no fixture %q", op.TargetID)
		}
		tTyp, tID, tVer = x.targetOf(f)
		if tID == "" {
			return "", fmt.Errorf("targetId %s: the fixture names no resource (no id in its body, no Location header)", op.TargetID)
		}
		if typ == "" || op.Resource == "" {
			typ = tTyp
		}
	}
	typePath := x.base
	if typ != "" {
		typePath += "/" + typ
	}
	// params is "the path and query after [type]": a full remainder unless it is only a
	// query and the operation has its own path to add it to.
	if params != "" && !strings.HasPrefix(params, "?") {
		return finishURL(typePath+params, encode), nil
	}
	var u string
	switch code {
	case "capabilities":
		u = x.base + "/metadata"
	case "transaction", "batch":
		u = x.base
	case "create", "search", "deleteCondSingle", "deleteCondMultiple":
		if typ == "" && code != "search" {
			return "", fmt.Errorf("%s needs a resource type (resource, or a sourceId with a resourceType)", code)
		}
		u = typePath
	case "read", "vread", "update", "updateCreate", "patch", "delete":
		id := tID
		if id == "" && params != "" && (code == "update" || code == "patch" || code == "delete") {
			u = typePath // conditional interaction: PUT/PATCH/DELETE [type]?query
			break
		}
		if id == "" && (code == "update" || code == "updateCreate") {
			id = srcID
		}
		if id == "" {
			return "", fmt.Errorf("%s needs a targetId (or params, or a sourceId with an id)", code)
		}
		if typ == "" {
			return "", fmt.Errorf("%s needs a resource type", code)
		}
		u = typePath + "/" + id
		if code == "vread" {
			if tVer == "" {
				return "", fmt.Errorf("vread: the target %s has no version (meta.versionId, Location or ETag)", op.TargetID)
			}
			u += "/_history/" + tVer
		}
	case "history":
		u = typePath
		if tID != "" {
			u += "/" + tID
		}
		u += "/_history"
	default:
		// An operation ($validate, $everything ...), on the system, a type or an instance.
		u = typePath
		if tID != "" {
			u += "/" + tID
		}
		name := code
		if name == "" {
			return "", fmt.Errorf("the operation has no type and no url")
		}
		u += "/$" + strings.TrimPrefix(name, "$")
	}
	return finishURL(u+params, encode), nil
}

// isAbsoluteURL reports whether u names its scheme (http://host/...). Only the part before
// the query counts: a relative url may carry a system URL in its query
// (Patient/1/Observation?code=http://loinc.org|8867-4).
func isAbsoluteURL(u string) bool {
	path, _, _ := strings.Cut(u, "?")
	return strings.Contains(path, "://")
}

// finishURL encodes the query of u (encodeRequestUrl): each name and value is decoded as
// written and re-encoded, so values such as system|code or dates with + are sent intact.
func finishURL(u string, encode bool) string {
	if !encode {
		return u
	}
	base, q, ok := strings.Cut(u, "?")
	if !ok || q == "" {
		return u
	}
	var parts []string
	for _, p := range strings.Split(q, "&") {
		if p == "" {
			continue
		}
		k, v, hasV := strings.Cut(p, "=")
		k = queryPart(k)
		if hasV {
			parts = append(parts, k+"="+queryPart(v))
		} else {
			parts = append(parts, k)
		}
	}
	return base + "?" + strings.Join(parts, "&")
}

// queryPart escapes one name or value. A part that already holds valid %-escapes is taken as
// encoded; '+' is kept literal (FHIR dates carry offsets such as +02:00).
func queryPart(s string) string {
	if strings.Contains(s, "%") {
		if d, err := url.PathUnescape(s); err == nil {
			s = d
		}
	}
	return url.QueryEscape(s)
}
