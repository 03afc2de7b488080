// Package conformance runs FHIR R4 TestScript resources against a FHIR server over HTTP and
// reports the outcome as a FHIR TestReport and a readable summary.
//
// The engine executes fixtures, variables with ${name} substitution, and setup, test and
// teardown actions: every operation type of the testscript-operation-codes value set
// (RESTful interactions and $operations) and every assert kind and operator of R4. It talks
// only HTTP and JSON, so it works against any FHIR base URL, not just Vigil.
//
//	r := &conformance.Runner{Base: "http://127.0.0.1:8080/fhir"}
//	res, err := r.RunFile(ctx, "testdata/testscripts/crud/create-read.json")
//	if err != nil { ... } // the script itself could not be run
//	res.WriteSummary(os.Stdout)
//	os.WriteFile("report.json", res.Report, 0o644)
//
// Semantics where the specification leaves room:
//   - a fixture reference is a contained resource (#id), else a JSON file relative to the
//     script's directory, else, when it has the form Type/id and no such file exists, that
//     resource on the server under test (read when first used);
//   - variables are evaluated when used, against the current content of their source (the
//     sourceId fixture, else the last response); an empty result falls back to defaultValue;
//   - paths may be JSONPath-style ($.name[0].family), dotted (Patient.name.family) or the
//     XPath form of scripts written for XML (fhir:Patient/fhir:name/fhir:family/@value);
//   - a failing (or erroring) assert stops its test: the rest of its actions are skipped,
//     unless the assert is warningOnly, which records a warning and carries on;
//   - a failing setup skips every test; teardown and autodelete always run (a teardown
//     operation whose target an earlier failure never created is skipped);
//   - an operation passes when the server answered, whatever the status: asserts judge it;
//     the default client does not follow redirects;
//   - navigationLinks true requires a Bundle with at least one of the first, previous, next
//     and last links (false requires none); validateProfileId validates the resource
//     structurally (fhirvalidate) and checks its type against a core profile's type;
//     minimumId ignores the fixture's top-level id and meta;
//   - TestReport.score is the percentage of asserts that passed (warnings count as passed).
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil/fhirvalidate"
)

// DefaultMaxResponseBytes bounds how much of a response body the engine reads.
const DefaultMaxResponseBytes = 32 << 20

// Runner runs TestScripts against one FHIR server. The zero value is not usable: Base must be
// set. A Runner may run several scripts concurrently; it must not be copied after first use.
type Runner struct {
	// Base is the FHIR base URL of the server under test, e.g. http://127.0.0.1:8080/fhir.
	Base string
	// Client sends the requests; nil means a client with a 60 s timeout that does not
	// follow redirects (so that scripts can assert on them).
	Client *http.Client
	// Headers are added to every request to Base's host (e.g. Authorization); requests to
	// other hosts (an absolute url in a script, a paging link) do not get them, so
	// credentials do not leak. A script's requestHeader of the same name wins.
	Headers http.Header
	// Validator checks validateProfileId asserts; nil means fhirvalidate.New with defaults.
	Validator *fhirvalidate.Validator
	// MaxResponseBytes bounds response bodies read; 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Now stamps TestReport.issued; nil means time.Now.
	Now func() time.Time

	once      sync.Once
	client    *http.Client
	validator *fhirvalidate.Validator
}

func (r *Runner) init() {
	r.once.Do(func() {
		r.client = r.Client
		if r.client == nil {
			r.client = &http.Client{
				Timeout: 60 * time.Second,
				// Redirects are answers to assert on, not to follow.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
		}
		r.validator = r.Validator
		if r.validator == nil {
			r.validator = fhirvalidate.New(fhirvalidate.Options{})
		}
	})
}

// Action results, as in TestReport (report-action-result-codes).
const (
	ResultPass    = "pass"
	ResultSkip    = "skip"
	ResultFail    = "fail"
	ResultWarning = "warning"
	ResultError   = "error"
)

// ActionResult is the outcome of one operation or assert.
type ActionResult struct {
	// Section is setup, test or teardown.
	Section string
	// Test is the name of the test (empty outside tests); TestIndex its position.
	Test      string
	TestIndex int
	// Kind is operation or assert.
	Kind string
	// Label describes the action: its label, description, or a generated summary.
	Label string
	// Result is pass, skip, fail, warning or error.
	Result string
	// Message explains the result (for a failed assert: expected and actual).
	Message string
	// Request is the request line of the exchange the action concerns ("GET <url>"),
	// Status its response status ("404 Not Found"), Body its response body, truncated.
	Request, Status, Body string

	// unsent marks an operation that could not be built (missing fixture or variable).
	unsent bool
}

// Result is the outcome of one TestScript.
type Result struct {
	// Script is the file the script came from (empty for RunScript), Name its name.
	Script, Name string
	// Report is the FHIR TestReport resource (JSON).
	Report []byte
	// Counts of action results.
	Passed, Failed, Warnings, Skipped, Errors int
	// Actions lists every action in execution order.
	Actions []ActionResult
}

// OK reports whether the script passed: no failed and no erroring action.
func (r *Result) OK() bool { return r.Failed == 0 && r.Errors == 0 }

// RunFile reads the TestScript JSON at path and runs it; fixture file references are
// resolved relative to the script's directory. The error reports a script that cannot be
// run (unreadable, invalid); failures of the server are reported in the Result.
func (r *Runner) RunFile(ctx context.Context, path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("conformance: read %s: %w", path, err)
	}
	res, err := r.RunScript(ctx, b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("conformance: %s: %w", path, err)
	}
	res.Script = path
	return res, nil
}

// RunScript runs a TestScript given as JSON. dir is the directory file references of
// fixtures are resolved against; empty allows only contained fixtures.
func (r *Runner) RunScript(ctx context.Context, script []byte, dir string) (*Result, error) {
	if r.Base == "" {
		return nil, errors.New("conformance: Runner.Base is not set")
	}
	r.init()
	s, err := parseScript(script)
	if err != nil {
		return nil, err
	}
	x := &run{
		r:        r,
		ctx:      ctx,
		script:   s,
		dir:      dir,
		base:     strings.TrimRight(r.Base, "/"),
		fixtures: map[string]*fixture{},
		vars:     map[string]*scriptVariable{},
		profiles: map[string]string{},
	}
	if err := x.load(); err != nil {
		return nil, err
	}
	x.execute()
	return x.result()
}

// exchange is one HTTP request and its response.
type exchange struct {
	method, url string
	reqHeader   http.Header
	reqBody     []byte
	status      int
	statusText  string
	respHeader  http.Header
	respBody    []byte
}

// fixture is a named document: a static resource of the script, or the request or
// response of an operation.
type fixture struct {
	id string
	// static is the raw resource of a static fixture (variables not yet substituted).
	static []byte
	// ex is the exchange of a responseId/requestId fixture, or the autocreate of a static one.
	ex        *exchange
	isRequest bool
	autodel   bool
	// serverRef is a Type/id reference to a resource of the server under test, read on
	// first use into static.
	serverRef string
}

// serverRef matches a relative literal reference Type/id.
var serverRef = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$`)

// document is what asserts and variables look at.
type document struct {
	body      []byte
	header    http.Header
	status    int
	hasStatus bool
	ex        *exchange
}

type run struct {
	r        *Runner
	ctx      context.Context
	script   *testScript
	dir      string
	base     string
	fixtures map[string]*fixture
	fixOrder []string
	vars     map[string]*scriptVariable
	profiles map[string]string
	last     *exchange
	created  []*fixture
	actions  []ActionResult
}

// load resolves fixtures, variables and profiles.
func (x *run) load() error {
	contained := map[string][]byte{}
	for i, c := range x.script.Contained {
		var head struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(c, &head); err != nil || head.ID == "" {
			return fmt.Errorf("%w: contained[%d] has no id", ErrScript, i)
		}
		contained[head.ID] = c
	}
	for _, f := range x.script.Fixture {
		fx := &fixture{id: f.ID, autodel: f.Autodelete}
		if f.Resource == nil || f.Resource.Reference == "" {
			if f.Autocreate {
				return fmt.Errorf("%w: fixture %q is autocreate but has no resource", ErrScript, f.ID)
			}
		} else {
			ref := f.Resource.Reference
			if strings.HasPrefix(ref, "#") {
				b, ok := contained[ref[1:]]
				if !ok {
					return fmt.Errorf("%w: fixture %q: no contained resource %s", ErrScript, f.ID, ref)
				}
				fx.static = b
			} else {
				b, err := x.readFixtureFile(ref)
				switch {
				case err == nil:
					fx.static = b
				case (x.dir == "" || errors.Is(err, fs.ErrNotExist)) && serverRef.MatchString(ref):
					// Type/id with no such file: the resource on the server under test.
					fx.serverRef = ref
				default:
					return fmt.Errorf("%w: fixture %q: %v", ErrScript, f.ID, err)
				}
			}
		}
		x.fixtures[f.ID] = fx
		x.fixOrder = append(x.fixOrder, f.ID)
	}
	for i := range x.script.Variable {
		v := &x.script.Variable[i]
		x.vars[v.Name] = v
	}
	for _, p := range x.script.Profile {
		if p.ID != "" {
			x.profiles[p.ID] = p.Reference
		}
	}
	return nil
}

func (x *run) readFixtureFile(ref string) ([]byte, error) {
	if strings.Contains(ref, "://") {
		return nil, fmt.Errorf("remote fixture %q is not supported: vendor it next to the script", ref)
	}
	if x.dir == "" {
		return nil, fmt.Errorf("file reference %q needs the script's directory (use RunFile)", ref)
	}
	p := filepath.Join(x.dir, filepath.FromSlash(strings.TrimPrefix(ref, "/")))
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '<' {
		return nil, fmt.Errorf("%s is XML: only JSON fixtures are supported", ref)
	}
	return b, nil
}

// execute runs autocreate, setup, tests, teardown and autodelete.
func (x *run) execute() {
	setupOK := true
	for _, id := range x.fixOrder {
		f := x.fixtures[id]
		sf := x.scriptFixture(id)
		if !sf.Autocreate {
			continue
		}
		if !setupOK {
			x.add(ActionResult{Section: "setup", Kind: "operation", Label: "autocreate " + id, Result: ResultSkip})
			continue
		}
		ar := x.autocreate(f)
		x.add(ar)
		if ar.Result != ResultPass {
			setupOK = false
		}
	}
	if x.script.Setup != nil {
		for _, a := range x.script.Setup.Action {
			if !setupOK {
				x.add(x.skipped("setup", "", 0, a))
				continue
			}
			ar := x.action(a)
			ar.Section = "setup"
			x.add(ar)
			if ar.Result == ResultFail || ar.Result == ResultError {
				setupOK = false
			}
		}
	}
	for i, t := range x.script.Test {
		stopped := !setupOK
		for _, a := range t.Action {
			if stopped {
				x.add(x.skipped("test", t.Name, i, a))
				continue
			}
			ar := x.action(a)
			ar.Section, ar.Test, ar.TestIndex = "test", t.Name, i
			x.add(ar)
			if ar.Result == ResultFail || ar.Result == ResultError {
				stopped = true
			}
		}
	}
	if x.script.Teardown != nil {
		for _, a := range x.script.Teardown.Action {
			ar := x.action(a)
			ar.Section = "teardown"
			if ar.unsent && !(setupOK && x.allTestsRan()) {
				// Cleaning up what an earlier failure never created is not a failure of
				// its own: the cause is already reported.
				ar.Result = ResultSkip
				ar.Message = "not run: " + ar.Message
			}
			x.add(ar)
		}
	}
	for i := len(x.created) - 1; i >= 0; i-- {
		f := x.created[i]
		if !f.autodel {
			continue
		}
		x.add(x.autodelete(f))
	}
}

// allTestsRan reports whether no test action so far failed, erred or was skipped.
func (x *run) allTestsRan() bool {
	for _, a := range x.actions {
		if a.Result == ResultFail || a.Result == ResultError || a.Result == ResultSkip {
			return false
		}
	}
	return true
}

func (x *run) scriptFixture(id string) scriptFixture {
	for _, f := range x.script.Fixture {
		if f.ID == id {
			return f
		}
	}
	return scriptFixture{}
}

func (x *run) add(a ActionResult) { x.actions = append(x.actions, a) }

func (x *run) skipped(section, test string, idx int, a scriptAction) ActionResult {
	ar := ActionResult{Section: section, Test: test, TestIndex: idx, Result: ResultSkip}
	if a.Operation != nil {
		ar.Kind, ar.Label = "operation", operationLabel(a.Operation)
	} else {
		ar.Kind, ar.Label = "assert", assertLabel(a.Assert)
	}
	return ar
}

func (x *run) action(a scriptAction) ActionResult {
	if a.Operation != nil {
		return x.operation(a.Operation)
	}
	return x.assert(a.Assert)
}

// autocreate creates a static fixture on the server (POST [base]/[type]).
func (x *run) autocreate(f *fixture) ActionResult {
	ar := ActionResult{Section: "setup", Kind: "operation", Label: "autocreate " + f.id}
	body, err := x.staticBody(f, 0)
	if err != nil {
		ar.Result, ar.Message = ResultError, err.Error()
		return ar
	}
	typ, _, _ := resourceIdentity(body)
	if typ == "" {
		ar.Result, ar.Message = ResultError, fmt.Sprintf("fixture %s has no resourceType", f.id)
		return ar
	}
	u := x.base + "/" + typ
	ex, err := x.send(http.MethodPost, u, body, x.defaultHeaders(u, "", "", true))
	if err != nil {
		ar.Result, ar.Message = ResultError, err.Error()
		return ar
	}
	x.last = ex
	describe(&ar, ex)
	if ex.status/100 != 2 {
		ar.Result = ResultFail
		ar.Message = fmt.Sprintf("autocreate of fixture %s: expected a 2xx status, got %s", f.id, ex.statusLine())
		return ar
	}
	f.ex = ex
	x.created = append(x.created, f)
	ar.Result = ResultPass
	ar.Message = fmt.Sprintf("POST %s/%s: %s", x.base, typ, ex.statusLine())
	return ar
}

// autodelete deletes what autocreate created.
func (x *run) autodelete(f *fixture) ActionResult {
	ar := ActionResult{Section: "teardown", Kind: "operation", Label: "autodelete " + f.id}
	typ, id, _ := x.targetOf(f)
	if typ == "" || id == "" {
		ar.Result, ar.Message = ResultError, fmt.Sprintf("cannot tell what autocreate of %s created", f.id)
		return ar
	}
	u := x.base + "/" + typ + "/" + id
	ex, err := x.send(http.MethodDelete, u, nil, x.defaultHeaders(u, "", "", false))
	if err != nil {
		ar.Result, ar.Message = ResultError, err.Error()
		return ar
	}
	describe(&ar, ex)
	ar.Result = ResultPass
	ar.Message = fmt.Sprintf("DELETE %s/%s/%s: %s", x.base, typ, id, ex.statusLine())
	return ar
}

func (ex *exchange) statusLine() string {
	if ex.statusText != "" {
		return ex.statusText
	}
	return fmt.Sprintf("%d %s", ex.status, http.StatusText(ex.status))
}

// describe records the exchange on an action result, for the summary of failures.
func describe(ar *ActionResult, ex *exchange) {
	if ex == nil {
		return
	}
	ar.Request = ex.method + " " + ex.url
	ar.Status = ex.statusLine()
	ar.Body = summarizeBody(ex.respBody)
}

// summarizeBody compacts a JSON body and cuts it to a readable length.
func summarizeBody(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) == nil {
		b = buf.Bytes()
	}
	return truncate(string(b), 500)
}

// send performs one HTTP exchange.
func (x *run) send(method, u string, body []byte, h http.Header) (*exchange, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(x.ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, u, err)
	}
	req.Header = h
	ex := &exchange{method: method, url: u, reqHeader: h, reqBody: body}
	resp, err := x.r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	max := x.r.MaxResponseBytes
	if max <= 0 {
		max = DefaultMaxResponseBytes
	}
	rb, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the response: %w", method, u, err)
	}
	if int64(len(rb)) > max {
		return nil, fmt.Errorf("%s %s: the response body exceeds %d bytes", method, u, max)
	}
	ex.status = resp.StatusCode
	ex.statusText = resp.Status
	ex.respHeader = resp.Header
	ex.respBody = rb
	return ex, nil
}

// defaultHeaders builds the headers of a request to u: the Runner's (for Base's host
// only), then Accept and Content-Type from the operation's codes.
func (x *run) defaultHeaders(u, accept, contentType string, hasBody bool) http.Header {
	h := http.Header{}
	if sameHost(u, x.base) {
		for k, vs := range x.r.Headers {
			h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
		}
	}
	h.Set("Accept", mimeType(accept, "application/fhir+json"))
	if hasBody && contentType != "none" {
		h.Set("Content-Type", mimeType(contentType, "application/fhir+json"))
	}
	return h
}

// sameHost reports whether two URLs share scheme and host (port included).
func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host)
}

// mimeType maps a TestScript content-type code (json, xml, ttl, none) or a mime type to a
// mime type.
func mimeType(code, def string) string {
	switch strings.ToLower(code) {
	case "":
		return def
	case "json":
		return "application/fhir+json"
	case "xml":
		return "application/fhir+xml"
	case "ttl":
		return "text/turtle"
	}
	return code
}

// staticBody returns a static fixture's resource with variables substituted.
func (x *run) staticBody(f *fixture, depth int) ([]byte, error) {
	if f.static == nil && f.serverRef != "" {
		if err := x.fetchFixture(f); err != nil {
			return nil, err
		}
	}
	if f.static == nil {
		return nil, fmt.Errorf("fixture %s has no resource", f.id)
	}
	s, err := substitute(string(f.static), x.lookupAt(depth+1), true, true)
	if err != nil {
		return nil, fmt.Errorf("fixture %s: %w", f.id, err)
	}
	return []byte(s), nil
}

// fetchFixture reads a fixture that references a resource of the server under test.
func (x *run) fetchFixture(f *fixture) error {
	u := x.base + "/" + f.serverRef
	ex, err := x.send(http.MethodGet, u, nil, x.defaultHeaders(u, "", "", false))
	if err != nil {
		return fmt.Errorf("fixture %s: %w", f.id, err)
	}
	if ex.status != http.StatusOK {
		return fmt.Errorf("fixture %s: GET %s answered %s", f.id, u, ex.statusLine())
	}
	f.static = ex.respBody
	return nil
}

// doc returns what a fixture holds for asserts and variables.
func (x *run) doc(id string, depth int) (document, error) {
	f, ok := x.fixtures[id]
	if !ok {
		return document{}, fmt.Errorf("no fixture %q (not declared, and no operation has stored a response or request under that id yet)", id)
	}
	switch {
	case f.static != nil || f.serverRef != "" && f.ex == nil:
		b, err := x.staticBody(f, depth)
		return document{body: b}, err
	case f.ex != nil && f.isRequest:
		return document{body: f.ex.reqBody, header: f.ex.reqHeader, ex: f.ex}, nil
	case f.ex != nil:
		return document{body: f.ex.respBody, header: f.ex.respHeader, status: f.ex.status, hasStatus: true, ex: f.ex}, nil
	}
	return document{}, fmt.Errorf("fixture %q has no content yet", id)
}

// resourceIdentity reads resourceType, id and meta.versionId of a JSON resource.
func resourceIdentity(body []byte) (typ, id, version string) {
	var head struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Meta         struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
	}
	if json.Unmarshal(body, &head) != nil {
		return "", "", ""
	}
	return head.ResourceType, head.ID, head.Meta.VersionID
}

// targetOf tells which resource a fixture designates: the resource of a response (its body,
// else its Location header), the resource autocreate made, or a static resource's own id.
func (x *run) targetOf(f *fixture) (typ, id, version string) {
	if f.ex != nil {
		body, h := f.ex.respBody, f.ex.respHeader
		if f.isRequest {
			body, h = f.ex.reqBody, f.ex.reqHeader
		}
		typ, id, version = resourceIdentity(body)
		if typ == "OperationOutcome" || typ == "Bundle" && !f.isRequest {
			typ, id, version = "", "", ""
		}
		if loc := h.Get("Location"); loc != "" && (id == "" || version == "") {
			lt, li, lv := parseLocation(loc)
			if id == "" {
				typ, id = lt, li
			}
			if version == "" && li == id {
				version = lv
			}
		}
		if version == "" && h != nil {
			version = strings.Trim(strings.TrimPrefix(h.Get("ETag"), "W/"), `"`)
		}
		if id != "" {
			return typ, id, version
		}
	}
	if f.static != nil || f.serverRef != "" {
		b, err := x.staticBody(f, 0)
		if err == nil {
			return resourceIdentity(b)
		}
	}
	return "", "", ""
}

// parseLocation reads [base]/Type/id[/_history/vid] from a Location header.
func parseLocation(loc string) (typ, id, version string) {
	if i := strings.IndexAny(loc, "?#"); i >= 0 {
		loc = loc[:i]
	}
	parts := strings.Split(strings.Trim(loc, "/"), "/")
	if n := len(parts); n >= 4 && parts[n-2] == "_history" {
		version = parts[n-1]
		parts = parts[:n-2]
	}
	if n := len(parts); n >= 2 {
		return parts[n-2], parts[n-1], version
	}
	return "", "", ""
}

func (x *run) result() (*Result, error) {
	res := &Result{Name: x.script.displayName(), Actions: x.actions}
	for _, a := range x.actions {
		switch a.Result {
		case ResultPass:
			res.Passed++
		case ResultFail:
			res.Failed++
		case ResultWarning:
			res.Warnings++
		case ResultSkip:
			res.Skipped++
		case ResultError:
			res.Errors++
		}
	}
	rep, err := x.report(res)
	if err != nil {
		return nil, err
	}
	res.Report = rep
	return res, nil
}
