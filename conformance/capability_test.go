package conformance_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/conformance"
	"github.com/vigil-health/vigil/fhirstore/storetest"
)

// focusTypes are the resource types whose every claimed interaction, search parameter,
// _include and operation must be exercised by some TestScript. For the other types the
// claims are checked per kind (each interaction code, each parameter type on some type).
var focusTypes = []string{"Observation", "Patient", "Device", "DetectedIssue"}

// capStatement is the part of the CapabilityStatement the coverage test walks.
type capStatement struct {
	Format      []string `json:"format"`
	PatchFormat []string `json:"patchFormat"`
	Rest        []struct {
		Interaction []struct{ Code string } `json:"interaction"`
		Resource    []capResource           `json:"resource"`
	} `json:"rest"`
}

type capResource struct {
	Type              string                  `json:"type"`
	Interaction       []struct{ Code string } `json:"interaction"`
	Versioning        string                  `json:"versioning"`
	ReadHistory       bool                    `json:"readHistory"`
	UpdateCreate      bool                    `json:"updateCreate"`
	ConditionalCreate bool                    `json:"conditionalCreate"`
	ConditionalRead   string                  `json:"conditionalRead"`
	ConditionalUpdate bool                    `json:"conditionalUpdate"`
	ConditionalDelete string                  `json:"conditionalDelete"`
	ReferencePolicy   []string                `json:"referencePolicy"`
	SearchInclude     []string                `json:"searchInclude"`
	SearchRevInclude  []string                `json:"searchRevInclude"`
	SearchParam       []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"searchParam"`
	Operation []struct{ Name string } `json:"operation"`
}

// scriptDoc is the part of a TestScript the coverage analysis reads.
type scriptDoc struct {
	ID      string `json:"id"`
	Fixture []struct {
		ID       string `json:"id"`
		Resource *struct {
			Reference string `json:"reference"`
		} `json:"resource"`
	} `json:"fixture"`
	Setup    *scriptSection  `json:"setup"`
	Test     []scriptSection `json:"test"`
	Teardown *scriptSection  `json:"teardown"`
}

type scriptSection struct {
	Action []struct {
		Operation *scriptOperation `json:"operation"`
	} `json:"action"`
}

type scriptOperation struct {
	Type *struct {
		Code string `json:"code"`
	} `json:"type"`
	Resource      string `json:"resource"`
	Accept        string `json:"accept"`
	ContentType   string `json:"contentType"`
	Method        string `json:"method"`
	Params        string `json:"params"`
	RequestHeader []struct {
		Field string `json:"field"`
		Value string `json:"value"`
	} `json:"requestHeader"`
	SourceID string `json:"sourceId"`
	TargetID string `json:"targetId"`
	URL      string `json:"url"`
}

// exercise is one request a script makes, as far as can be told without running it:
// the interaction, the resource type, the query and the headers. Entries of transaction
// and batch Bundle fixtures are exercises too (the server runs them through the same
// dispatcher).
type exercise struct {
	Script      string
	Interaction string // an interaction code of the CapabilityStatement, or "operation"
	Operation   string // the $operation name, for Interaction "operation"
	Type        string
	Query       url.Values
	Header      http.Header
	ContentType string
	Accept      string
	Conditional bool // update, patch or delete on [type]?query
	CodeHint    string
}

// resourceTypeName matches a FHIR resource type name (a path segment that names a type).
var resourceTypeName = regexp.MustCompile(`^[A-Z][A-Za-z]+$`)

// classify turns a method and a path relative to the base ("Patient/1/_history", "?_type=x",
// "Observation/$lastn?...") into an exercise. code is the operation type code, which decides
// only what the path cannot (updateCreate, transaction or batch).
func classify(method, rel, code string) exercise {
	ex := exercise{CodeHint: code, Query: url.Values{}}
	path, query, _ := strings.Cut(rel, "?")
	if q, err := url.ParseQuery(query); err == nil {
		ex.Query = q
	} else {
		// Unencoded values (system|code, a + in a date) are common in scripts: split by hand.
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if k != "" {
				ex.Query.Add(k, v)
			}
		}
	}
	var segs []string
	for _, s := range strings.Split(path, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	for i, s := range segs {
		if strings.HasPrefix(s, "$") {
			ex.Interaction, ex.Operation = "operation", strings.TrimPrefix(s, "$")
			if i > 0 && resourceTypeName.MatchString(segs[0]) {
				ex.Type = segs[0]
			}
			return ex
		}
	}
	if len(segs) > 0 && resourceTypeName.MatchString(segs[0]) {
		ex.Type = segs[0]
	}
	n := len(segs)
	switch {
	case n == 1 && segs[0] == "metadata":
		ex.Interaction = "capabilities"
	case n == 0 && method == http.MethodGet:
		ex.Interaction = "search-system"
	case n == 0 && method == http.MethodPost:
		ex.Interaction = code // transaction or batch
	case n == 1 && segs[0] == "_history":
		ex.Interaction = "history-system"
	case n == 1 && ex.Type != "":
		switch method {
		case http.MethodGet:
			ex.Interaction = "search-type"
		case http.MethodPost:
			ex.Interaction = "create"
		case http.MethodPut:
			ex.Interaction, ex.Conditional = "update", true
		case http.MethodPatch:
			ex.Interaction, ex.Conditional = "patch", true
		case http.MethodDelete:
			ex.Interaction, ex.Conditional = "delete", true
		}
	case n == 2 && ex.Type != "" && segs[1] == "_search" && method == http.MethodPost:
		ex.Interaction = "search-type"
	case n == 2 && ex.Type != "" && segs[1] == "_history":
		ex.Interaction = "history-type"
	case n == 2 && ex.Type != "":
		switch method {
		case http.MethodGet, http.MethodHead:
			ex.Interaction = "read"
		case http.MethodPut:
			ex.Interaction = "update"
			if code == "updateCreate" {
				ex.Interaction = "updateCreate"
			}
		case http.MethodPatch:
			ex.Interaction = "patch"
		case http.MethodDelete:
			ex.Interaction = "delete"
		}
	case n == 3 && ex.Type != "" && segs[2] == "_history":
		ex.Interaction = "history-instance"
	case n == 3 && ex.Type != "" && resourceTypeName.MatchString(segs[2]) && method == http.MethodGet:
		// Compartment search: the searched type is the last segment.
		ex.Interaction, ex.Type = "search-type", segs[2]
	case n == 4 && ex.Type != "" && segs[2] == "_history":
		ex.Interaction = "vread"
	}
	return ex
}

// defaultMethods are the HTTP methods of the operation type codes (as the engine sends them).
var defaultMethods = map[string]string{
	"read": http.MethodGet, "vread": http.MethodGet, "search": http.MethodGet, "history": http.MethodGet,
	"capabilities": http.MethodGet, "create": http.MethodPost, "update": http.MethodPut,
	"updateCreate": http.MethodPut, "patch": http.MethodPatch, "delete": http.MethodDelete,
	"deleteCondSingle": http.MethodDelete, "deleteCondMultiple": http.MethodDelete,
	"transaction": http.MethodPost, "batch": http.MethodPost,
}

// fixtureResource is the head of a fixture: its type and, for Bundles, the entry requests.
type fixtureResource struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		Request *struct {
			Method, URL    string
			IfNoneExist    string `json:"ifNoneExist"`
			IfMatch        string `json:"ifMatch"`
			IfNoneMatch    string `json:"ifNoneMatch"`
			IfModifiedSinc string `json:"ifModifiedSince"`
		} `json:"request"`
	} `json:"entry"`
}

// analyze lists the exercises of the TestScript at path.
func analyze(path string) ([]exercise, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s scriptDoc
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fixtures := map[string]fixtureResource{}
	for _, f := range s.Fixture {
		if f.Resource == nil || strings.HasPrefix(f.Resource.Reference, "#") {
			continue
		}
		fb, err := os.ReadFile(filepath.Join(filepath.Dir(path), filepath.FromSlash(f.Resource.Reference)))
		if err != nil {
			continue // a server-referenced fixture (Type/id)
		}
		var fr fixtureResource
		if json.Unmarshal(fb, &fr) == nil {
			fixtures[f.ID] = fr
		}
	}
	var ops []*scriptOperation
	for _, sec := range append(append([]scriptSection{}, s.Test...), deref(s.Setup), deref(s.Teardown)) {
		for _, a := range sec.Action {
			if a.Operation != nil {
				ops = append(ops, a.Operation)
			}
		}
	}
	var out []exercise
	for _, op := range ops {
		out = append(out, opExercises(s.ID, op, fixtures)...)
	}
	return out, nil
}

func deref(s *scriptSection) scriptSection {
	if s == nil {
		return scriptSection{}
	}
	return *s
}

// opExercises builds the URL of an operation the way the engine does (variables left as
// written) and classifies it; a transaction or batch adds its Bundle's entries.
func opExercises(script string, op *scriptOperation, fixtures map[string]fixtureResource) []exercise {
	code := ""
	if op.Type != nil {
		code = op.Type.Code
	}
	src, hasSrc := fixtures[op.SourceID]
	method := defaultMethods[code]
	if method == "" {
		method = http.MethodGet
		if op.SourceID != "" {
			method = http.MethodPost
		}
	}
	if op.Method != "" {
		method = strings.ToUpper(op.Method)
	}
	typ := op.Resource
	if typ == "" && hasSrc {
		typ = src.ResourceType
	}
	var rel string
	switch {
	case op.URL != "":
		rel = op.URL
		if strings.HasPrefix(rel, "${") {
			// A link taken from a response (a next page): only the code tells what it is.
			rel = ""
			if code == "search" {
				rel = typ + "?"
			}
		}
	case op.Params != "" && !strings.HasPrefix(op.Params, "?"):
		rel = typ + op.Params
	default:
		id := ""
		if op.TargetID != "" {
			id = "{id}"
		}
		switch code {
		case "capabilities":
			rel = "metadata"
		case "transaction", "batch":
			rel = ""
		case "create", "search", "deleteCondSingle", "deleteCondMultiple":
			rel = typ
		case "read", "update", "updateCreate", "patch", "delete":
			rel = typ
			if id != "" || op.Params == "" || code == "read" {
				rel += "/{id}"
			}
		case "vread":
			rel = typ + "/{id}/_history/{vid}"
		case "history":
			rel = typ + "/_history"
			if id != "" {
				rel = typ + "/{id}/_history"
			}
		default:
			rel = typ
			if id != "" {
				rel += "/{id}"
			}
			rel += "/$" + strings.TrimPrefix(code, "$")
		}
		rel += op.Params
	}
	ex := classify(method, strings.TrimPrefix(rel, "/"), code)
	ex.Script = script
	ex.Header = http.Header{}
	for _, h := range op.RequestHeader {
		ex.Header.Add(h.Field, h.Value)
	}
	ex.Accept = mime(op.Accept)
	ex.ContentType = mime(op.ContentType)
	if ex.Interaction == "" && (code == "transaction" || code == "batch") {
		ex.Interaction = code
	}
	out := []exercise{ex}
	if hasSrc && src.ResourceType == "Bundle" && (src.Type == "transaction" || src.Type == "batch") {
		for _, e := range src.Entry {
			if e.Request == nil {
				continue
			}
			ee := classify(e.Request.Method, e.Request.URL, "")
			ee.Script = script
			ee.Header = http.Header{}
			if e.Request.IfNoneExist != "" {
				ee.Header.Set("If-None-Exist", e.Request.IfNoneExist)
			}
			if e.Request.IfMatch != "" {
				ee.Header.Set("If-Match", e.Request.IfMatch)
			}
			out = append(out, ee)
		}
	}
	return out
}

// mime maps TestScript content-type codes to mime types, as the engine does; empty stays
// empty (the engine then sends application/fhir+json).
func mime(code string) string {
	switch strings.ToLower(code) {
	case "json":
		return "application/fhir+json"
	case "xml":
		return "application/fhir+xml"
	}
	return code
}

// paramUse is one search parameter a query names: on which type, its name, modifier and
// value.
type paramUse struct {
	Type, Name, Modifier, Value string
}

// paramUses reads the search parameters of a query on typ, following chains
// (subject:Patient.name names subject on typ and name on Patient) and _has
// (_has:Observation:patient:code names patient and code on Observation).
func paramUses(typ string, q url.Values, refTarget func(typ, name string) string) []paramUse {
	var out []paramUse
	for key, vals := range q {
		for _, v := range vals {
			out = append(out, keyUses(typ, key, v, refTarget)...)
		}
	}
	return out
}

func keyUses(typ, key, value string, refTarget func(typ, name string) string) []paramUse {
	if rest, ok := strings.CutPrefix(key, "_has:"); ok {
		parts := strings.SplitN(rest, ":", 3)
		if len(parts) < 3 {
			return nil
		}
		src, ref, inner := parts[0], parts[1], parts[2]
		return append([]paramUse{{Type: src, Name: ref}}, keyUses(src, inner, value, refTarget)...)
	}
	head, chain, chained := strings.Cut(key, ".")
	name, mod, _ := strings.Cut(head, ":")
	if !chained {
		return []paramUse{{Type: typ, Name: name, Modifier: mod, Value: value}}
	}
	target := mod
	if target == "" {
		target = refTarget(typ, name)
	}
	out := []paramUse{{Type: typ, Name: name, Modifier: mod}}
	if target != "" {
		out = append(out, keyUses(target, chain, value, refTarget)...)
	}
	return out
}

// claim is one thing the CapabilityStatement (or the README's search table) says the server
// does, and how a script exercise proves it is exercised.
type claim struct {
	name    string
	covered func(exercise, []paramUse) bool
}

// resultParams are the result parameters of the README's search table ("results" row),
// one claim per value where the README lists values.
func resultParams(t *testing.T, readme string) []string {
	t.Helper()
	row := tableRow(t, readme, "results")
	var out []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(row, -1) {
		tok := m[1]
		if !strings.HasPrefix(tok, "_") {
			continue
		}
		name, vals, ok := strings.Cut(tok, "=")
		if !ok {
			out = append(out, name)
			continue
		}
		for _, v := range strings.Split(vals, "|") {
			out = append(out, name+"="+v)
		}
	}
	return out
}

// tableRow returns the second cell of the README table row whose first cell is name.
func tableRow(t *testing.T, readme, name string) string {
	t.Helper()
	for _, line := range strings.Split(readme, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) > 2 && strings.TrimSpace(cells[1]) == name {
			return strings.Join(cells[2:len(cells)-1], "|")
		}
	}
	t.Fatalf("README.md has no %q row in its search table", name)
	return ""
}

// backticked returns the space-separated words inside the backticks of a README cell.
func backticked(cell string) []string {
	var out []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1) {
		out = append(out, strings.Fields(m[1])...)
	}
	return out
}

// fetchCapabilities starts Vigil on SQLite and reads its CapabilityStatement.
func fetchCapabilities(t *testing.T) capStatement {
	t.Helper()
	v := newVigil(t, storetest.Backends()[0])
	resp, err := http.Get(v.Base + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metadata: %d %v", resp.StatusCode, err)
	}
	var cs capStatement
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs.Rest) != 1 || len(cs.Rest[0].Resource) == 0 {
		t.Fatalf("the CapabilityStatement has no rest.resource")
	}
	return cs
}

// TestCapabilityCoverage walks the CapabilityStatement and fails, listing them, for every
// claimed item that no TestScript in testdata/testscripts exercises. What counts as
// exercising each kind of claim is in the claims built below; the scripts are read, not run
// (TestSuite runs them).
func TestCapabilityCoverage(t *testing.T) {
	cs := fetchCapabilities(t)
	readmeBytes, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(readmeBytes)
	paths, err := conformance.FindScripts(scriptDir)
	if err != nil {
		t.Fatal(err)
	}
	var exercises []exercise
	for _, p := range paths {
		ex, err := analyze(p)
		if err != nil {
			t.Fatal(err)
		}
		exercises = append(exercises, ex...)
	}

	rest := cs.Rest[0]
	res := map[string]capResource{}
	paramType := map[string]string{} // Type.name -> type
	for _, r := range rest.Resource {
		res[r.Type] = r
		for _, sp := range r.SearchParam {
			paramType[r.Type+"."+sp.Name] = sp.Type
		}
	}
	// A chain without a type modifier follows the reference to the type the scripts use
	// most: Patient for subject and patient, otherwise nothing is inferred.
	refTarget := func(typ, name string) string {
		if paramType[typ+"."+name] == "reference" && (name == "subject" || name == "patient") {
			return "Patient"
		}
		return ""
	}
	isSearch := func(e exercise) bool {
		return e.Interaction == "search-type" || e.Interaction == "search-system" || e.Conditional ||
			e.Interaction == "create" && e.Header.Get("If-None-Exist") != ""
	}
	uses := make([][]paramUse, len(exercises))
	for i, e := range exercises {
		if !isSearch(e) {
			continue
		}
		q := e.Query
		if e.Interaction == "create" {
			q, _ = url.ParseQuery(e.Header.Get("If-None-Exist"))
		}
		uses[i] = paramUses(e.Type, q, refTarget)
	}

	var claims []claim
	add := func(name string, f func(exercise, []paramUse) bool) { claims = append(claims, claim{name, f}) }
	interaction := func(code, typ string) func(exercise, []paramUse) bool {
		return func(e exercise, _ []paramUse) bool {
			return (e.Interaction == code || code == "update" && e.Interaction == "updateCreate") && (typ == "" || e.Type == typ)
		}
	}
	for _, in := range rest.Interaction {
		add("system interaction "+in.Code, interaction(in.Code, ""))
	}
	codes := map[string]bool{}
	for _, r := range rest.Resource {
		for _, in := range r.Interaction {
			codes[in.Code] = true
		}
	}
	for _, code := range sortedKeys(codes) {
		add("interaction "+code+" (on some type)", interaction(code, ""))
	}
	for _, typ := range focusTypes {
		r, ok := res[typ]
		if !ok {
			t.Errorf("the CapabilityStatement does not list %s", typ)
			continue
		}
		for _, in := range r.Interaction {
			add(typ+" interaction "+in.Code, interaction(in.Code, typ))
		}
		for _, sp := range r.SearchParam {
			name := sp.Name
			add(typ+" searchParam "+name+" ("+sp.Type+")", func(_ exercise, us []paramUse) bool {
				return slices.ContainsFunc(us, func(u paramUse) bool { return u.Type == typ && u.Name == name })
			})
		}
		for _, inc := range r.SearchInclude {
			if inc == "*" {
				continue
			}
			add(typ+" searchInclude "+inc, func(e exercise, _ []paramUse) bool {
				return e.Type == typ && slices.Contains(append(e.Query["_include"], e.Query["_include:iterate"]...), inc)
			})
		}
		revs := r.SearchRevInclude
		add(typ+" searchRevInclude (at least one of the claimed)", func(e exercise, _ []paramUse) bool {
			return e.Type == typ && slices.ContainsFunc(e.Query["_revinclude"], func(v string) bool { return slices.Contains(revs, v) })
		})
		for _, o := range r.Operation {
			name := o.Name
			add(typ+" operation $"+name, func(e exercise, _ []paramUse) bool {
				return e.Interaction == "operation" && e.Operation == name && e.Type == typ
			})
		}
	}
	ops := map[string]bool{}
	for _, r := range rest.Resource {
		for _, o := range r.Operation {
			ops[o.Name] = true
		}
	}
	for _, name := range sortedKeys(ops) {
		add("operation $"+name+" (on some type)", func(e exercise, _ []paramUse) bool {
			return e.Interaction == "operation" && e.Operation == name
		})
	}
	ptypes := map[string]bool{}
	for _, v := range paramType {
		ptypes[v] = true
	}
	for _, pt := range sortedKeys(ptypes) {
		add("searchParam type "+pt+" (on some type)", func(_ exercise, us []paramUse) bool {
			return slices.ContainsFunc(us, func(u paramUse) bool { return paramType[u.Type+"."+u.Name] == pt && u.Value != "" })
		})
	}
	for _, m := range backticked(tableRow(t, readme, "modifiers")) {
		mod := strings.TrimPrefix(m, ":")
		add("modifier :"+mod, func(_ exercise, us []paramUse) bool {
			return slices.ContainsFunc(us, func(u paramUse) bool {
				if paramType[u.Type+"."+u.Name] == "" {
					return false
				}
				if mod == "[type]" {
					return resourceTypeName.MatchString(u.Modifier) && paramType[u.Type+"."+u.Name] == "reference"
				}
				return u.Modifier == mod
			})
		})
	}
	for _, p := range backticked(tableRow(t, readme, "prefixes")) {
		add("prefix "+p, func(_ exercise, us []paramUse) bool {
			return slices.ContainsFunc(us, func(u paramUse) bool {
				switch paramType[u.Type+"."+u.Name] {
				case "date", "number", "quantity":
					return slices.ContainsFunc(strings.Split(u.Value, ","), func(v string) bool { return strings.HasPrefix(v, p) })
				}
				return false
			})
		})
	}
	for _, rp := range resultParams(t, readme) {
		name, val, hasVal := strings.Cut(rp, "=")
		add("result parameter "+rp, func(e exercise, _ []paramUse) bool {
			if !isSearch(e) && e.Interaction != "operation" {
				return false
			}
			for k, vs := range e.Query {
				if k != name && !strings.HasPrefix(k, name+":") {
					continue
				}
				if !hasVal || slices.Contains(vs, val) {
					return true
				}
			}
			return false
		})
	}
	add("searchInclude * (on some type)", func(e exercise, _ []paramUse) bool { return slices.Contains(e.Query["_include"], "*") })
	// The README's results row also claims * for _revinclude.
	add("_revinclude=* (on some type)", func(e exercise, _ []paramUse) bool { return slices.Contains(e.Query["_revinclude"], "*") })
	add("_include:iterate", func(e exercise, _ []paramUse) bool { return len(e.Query["_include:iterate"]) > 0 })
	add("_revinclude:iterate", func(e exercise, _ []paramUse) bool { return len(e.Query["_revinclude:iterate"]) > 0 })

	// Flags claimed identically by every type: exercised on any type.
	flags := map[string]func(exercise, []paramUse) bool{}
	for _, r := range rest.Resource {
		if r.ConditionalCreate {
			flags["conditionalCreate"] = func(e exercise, _ []paramUse) bool {
				return e.Interaction == "create" && e.Header.Get("If-None-Exist") != ""
			}
		}
		if r.ConditionalRead != "" && r.ConditionalRead != "not-supported" {
			flags["conditionalRead "+r.ConditionalRead] = func(e exercise, _ []paramUse) bool {
				return e.Interaction == "read" && (e.Header.Get("If-None-Match") != "" || e.Header.Get("If-Modified-Since") != "")
			}
		}
		if r.ConditionalUpdate {
			flags["conditionalUpdate"] = func(e exercise, _ []paramUse) bool { return e.Interaction == "update" && e.Conditional }
		}
		if r.ConditionalDelete == "single" || r.ConditionalDelete == "multiple" {
			want := r.ConditionalDelete
			flags["conditionalDelete "+want] = func(e exercise, _ []paramUse) bool {
				return e.Interaction == "delete" && e.Conditional && (want == "single" || e.CodeHint == "deleteCondMultiple")
			}
		}
		if r.UpdateCreate {
			flags["updateCreate"] = func(e exercise, _ []paramUse) bool { return e.Interaction == "updateCreate" }
		}
		if r.Versioning == "versioned-update" {
			flags["versioning versioned-update"] = func(e exercise, _ []paramUse) bool {
				return (e.Interaction == "update" || e.Interaction == "patch" || e.Interaction == "delete") && e.Header.Get("If-Match") != ""
			}
		}
		if r.ReadHistory {
			flags["readHistory"] = interaction("vread", "")
		}
		for _, p := range r.ReferencePolicy {
			switch p {
			case "literal":
				flags["referencePolicy literal"] = func(_ exercise, us []paramUse) bool {
					return slices.ContainsFunc(us, func(u paramUse) bool {
						return paramType[u.Type+"."+u.Name] == "reference" && strings.Contains(u.Value, "/")
					})
				}
			case "logical":
				flags["referencePolicy logical"] = func(_ exercise, us []paramUse) bool {
					return slices.ContainsFunc(us, func(u paramUse) bool {
						return paramType[u.Type+"."+u.Name] == "reference" && u.Modifier == "identifier"
					})
				}
			}
		}
	}
	for _, name := range sortedKeys(flags) {
		add(name, flags[name])
	}
	for _, f := range cs.Format {
		format := f
		add("format "+format, func(e exercise, _ []paramUse) bool {
			if strings.Contains(format, "/") {
				return e.Accept == format || e.ContentType == format || e.Accept == "" && format == "application/fhir+json"
			}
			return slices.Contains(e.Query["_format"], format)
		})
	}
	for _, f := range cs.PatchFormat {
		format := f
		add("patchFormat "+format, func(e exercise, _ []paramUse) bool {
			return e.Interaction == "patch" && e.ContentType == format
		})
	}

	var missing []string
	for _, c := range claims {
		covered := false
		for i, e := range exercises {
			if c.covered(e, uses[i]) {
				covered = true
				break
			}
		}
		if !covered {
			missing = append(missing, c.name)
		}
	}
	t.Logf("%d claims checked against %d requests of %d TestScripts", len(claims), len(exercises), len(paths))
	if len(missing) > 0 {
		t.Errorf("%d claims of the CapabilityStatement (and README search table) are exercised by no TestScript in %s:\n  %s",
			len(missing), scriptDir, strings.Join(missing, "\n  "))
	}

	// The reverse check: scripts search only with what is claimed, so that a typo in a
	// script (or a parameter the server dropped from its statement) does not pass unnoticed
	// as an error-handling test. Scripts about errors are exempt.
	var unclaimed []string
	for i, e := range exercises {
		if strings.HasPrefix(e.Script, "search-errors-") || strings.HasPrefix(e.Script, "validation-") {
			continue
		}
		for _, u := range uses[i] {
			if strings.HasPrefix(u.Name, "_") && !strings.HasPrefix(u.Name, "_id") && paramType[u.Type+"."+u.Name] == "" {
				continue // result parameters (_count, _sort, _include ...) and _type
			}
			if u.Type == "" {
				continue // whole-system search: common parameters
			}
			if paramType[u.Type+"."+u.Name] == "" {
				unclaimed = append(unclaimed, fmt.Sprintf("%s: %s?%s", e.Script, u.Type, u.Name))
			}
		}
	}
	if len(unclaimed) > 0 {
		sort.Strings(unclaimed)
		t.Errorf("scripts search with parameters the CapabilityStatement does not list:\n  %s", strings.Join(slices.Compact(unclaimed), "\n  "))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestClassify checks how script requests are mapped to CapabilityStatement interactions.
func TestClassify(t *testing.T) {
	tests := []struct {
		name, method, rel, code string
		want                    exercise
	}{
		{"search", "GET", "Observation?code=8867-4", "search", exercise{Interaction: "search-type", Type: "Observation", Query: url.Values{"code": {"8867-4"}}}},
		{"post search", "POST", "Observation/_search", "", exercise{Interaction: "search-type", Type: "Observation"}},
		{"system search", "GET", "?_type=Patient", "search", exercise{Interaction: "search-system", Query: url.Values{"_type": {"Patient"}}}},
		{"compartment", "GET", "Patient/1/Observation?code=x", "search", exercise{Interaction: "search-type", Type: "Observation", Query: url.Values{"code": {"x"}}}},
		{"read", "GET", "Patient/1", "read", exercise{Interaction: "read", Type: "Patient"}},
		{"head", "HEAD", "Patient/1", "", exercise{Interaction: "read", Type: "Patient"}},
		{"vread", "GET", "Patient/1/_history/2", "vread", exercise{Interaction: "vread", Type: "Patient"}},
		{"history instance", "GET", "Patient/1/_history", "history", exercise{Interaction: "history-instance", Type: "Patient"}},
		{"history type", "GET", "Patient/_history?_count=2", "history", exercise{Interaction: "history-type", Type: "Patient", Query: url.Values{"_count": {"2"}}}},
		{"history system", "GET", "_history", "history", exercise{Interaction: "history-system"}},
		{"create", "POST", "Patient", "create", exercise{Interaction: "create", Type: "Patient"}},
		{"update", "PUT", "Patient/1", "update", exercise{Interaction: "update", Type: "Patient"}},
		{"update as create", "PUT", "Patient/1", "updateCreate", exercise{Interaction: "updateCreate", Type: "Patient"}},
		{"conditional update", "PUT", "Patient?identifier=a|b", "update", exercise{Interaction: "update", Type: "Patient", Conditional: true, Query: url.Values{"identifier": {"a|b"}}}},
		{"conditional delete", "DELETE", "Patient?identifier=a|b", "deleteCondMultiple", exercise{Interaction: "delete", Type: "Patient", Conditional: true, Query: url.Values{"identifier": {"a|b"}}}},
		{"patch", "PATCH", "Patient/1", "patch", exercise{Interaction: "patch", Type: "Patient"}},
		{"type operation", "GET", "Observation/$lastn?max=2", "lastn", exercise{Interaction: "operation", Operation: "lastn", Type: "Observation", Query: url.Values{"max": {"2"}}}},
		{"instance operation", "GET", "Patient/1/$everything", "everything", exercise{Interaction: "operation", Operation: "everything", Type: "Patient"}},
		{"system operation", "POST", "$validate", "validate", exercise{Interaction: "operation", Operation: "validate"}},
		{"transaction", "POST", "", "transaction", exercise{Interaction: "transaction"}},
		{"metadata", "GET", "metadata?mode=terse", "capabilities", exercise{Interaction: "capabilities", Query: url.Values{"mode": {"terse"}}}},
		{"unencoded query", "GET", "Observation?value-quantity=ge69|http://unitsofmeasure.org|kg&date=ge2020-01-01T00:00:00+02:00", "search",
			exercise{Interaction: "search-type", Type: "Observation", Query: url.Values{"value-quantity": {"ge69|http://unitsofmeasure.org|kg"}, "date": {"ge2020-01-01T00:00:00 02:00"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.method, tt.rel, tt.code)
			tt.want.CodeHint = tt.code
			if tt.want.Query == nil {
				tt.want.Query = url.Values{}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("classify(%s %s) mismatch (-want +got):\n%s", tt.method, tt.rel, diff)
			}
		})
	}
}

// TestParamUses checks how query keys are read as search parameters, through chains and _has.
func TestParamUses(t *testing.T) {
	target := func(typ, name string) string {
		if name == "subject" {
			return "Patient"
		}
		return ""
	}
	tests := []struct {
		name, typ, key, value string
		want                  []paramUse
	}{
		{"plain", "Patient", "family", "x", []paramUse{{Type: "Patient", Name: "family", Value: "x"}}},
		{"modifier", "Patient", "family:exact", "x", []paramUse{{Type: "Patient", Name: "family", Modifier: "exact", Value: "x"}}},
		{"typed chain", "Observation", "subject:Patient.name", "x", []paramUse{{Type: "Observation", Name: "subject", Modifier: "Patient"}, {Type: "Patient", Name: "name", Value: "x"}}},
		{"untyped chain", "Observation", "subject.identifier", "a|b", []paramUse{{Type: "Observation", Name: "subject"}, {Type: "Patient", Name: "identifier", Value: "a|b"}}},
		{"two-level chain", "DetectedIssue", "implicated:Observation.subject:Patient.family", "x", []paramUse{
			{Type: "DetectedIssue", Name: "implicated", Modifier: "Observation"}, {Type: "Observation", Name: "subject", Modifier: "Patient"}, {Type: "Patient", Name: "family", Value: "x"}}},
		{"has", "Patient", "_has:Observation:patient:code", "x", []paramUse{{Type: "Observation", Name: "patient"}, {Type: "Observation", Name: "code", Value: "x"}}},
		{"nested has", "Patient", "_has:Observation:patient:_has:DetectedIssue:implicated:status", "final", []paramUse{
			{Type: "Observation", Name: "patient"}, {Type: "DetectedIssue", Name: "implicated"}, {Type: "DetectedIssue", Name: "status", Value: "final"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keyUses(tt.typ, tt.key, tt.value, target)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("keyUses(%s, %s) mismatch (-want +got):\n%s", tt.typ, tt.key, diff)
			}
		})
	}
}
