package conformance

import (
	"fmt"
	"mime"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil/fhirvalidate"
)

// responseCodes maps the assert-response-code-types codes to HTTP statuses.
var responseCodes = map[string]int{
	"continue": 100, "switchingProtocols": 101,
	"okay": 200, "created": 201, "noContent": 204,
	"notModified": 304,
	"bad":         400, "forbidden": 403, "notFound": 404, "methodNotAllowed": 405,
	"conflict": 409, "gone": 410, "preconditionFailed": 412, "unprocessable": 422,
}

func assertLabel(a *assertion) string {
	if a.Label != "" {
		return a.Label
	}
	if a.Description != "" {
		return a.Description
	}
	op := a.Operator
	if op == "" {
		op = "equals"
	}
	switch {
	case a.Response != "":
		return "response " + a.Response
	case a.ResponseCode != "":
		return "responseCode " + op + " " + a.ResponseCode
	case a.ContentType != "":
		return "contentType " + a.ContentType
	case a.HeaderField != "":
		return "headerField " + a.HeaderField + " " + op + " " + a.Value
	case a.Resource != "":
		return "resource " + a.Resource
	case a.MinimumID != "":
		return "minimumId " + a.MinimumID
	case a.NavigationLinks != nil:
		return "navigationLinks " + strconv.FormatBool(*a.NavigationLinks)
	case a.ValidateProfileID != "":
		return "validateProfileId " + a.ValidateProfileID
	case a.RequestMethod != "":
		return "requestMethod " + a.RequestMethod
	case a.RequestURL != "":
		return "requestURL " + op + " " + a.RequestURL
	case a.Expression != "":
		return "expression " + a.Expression
	case a.Path != "":
		return "path " + a.Path
	}
	return "assert"
}

// assert evaluates one assert.
func (x *run) assert(a *assertion) ActionResult {
	ar := ActionResult{Kind: "assert", Label: assertLabel(a)}
	ex := x.last
	ok, msg, err := x.check(a)
	if a.SourceID != "" {
		if f := x.fixtures[a.SourceID]; f != nil && f.ex != nil {
			ex = f.ex
		}
	}
	describe(&ar, ex)
	switch {
	case err != nil:
		ar.Result, ar.Message = ResultError, err.Error()
	case ok:
		ar.Result, ar.Message = ResultPass, msg
	case a.WarningOnly:
		ar.Result, ar.Message = ResultWarning, msg
	default:
		ar.Result, ar.Message = ResultFail, msg
	}
	return ar
}

// subject is what an assert looks at: the request or response of the last operation, or
// a fixture.
func (x *run) subject(a *assertion) (document, error) {
	request := a.Direction == "request"
	if a.SourceID != "" {
		return x.doc(a.SourceID, 0)
	}
	if x.last == nil {
		return document{}, fmt.Errorf("no operation has run yet and the assert has no sourceId")
	}
	if request {
		return document{body: x.last.reqBody, header: x.last.reqHeader, ex: x.last}, nil
	}
	return document{body: x.last.respBody, header: x.last.respHeader, status: x.last.status, hasStatus: true, ex: x.last}, nil
}

// check runs an assert. ok is the verdict; msg explains it (always for failures); err is a
// fault of the assert itself (bad expression, missing fixture).
func (x *run) check(a *assertion) (ok bool, msg string, err error) {
	d, err := x.subject(a)
	if err != nil {
		return false, "", err
	}
	value, err := x.sub(a.Value)
	if err != nil {
		return false, "", fmt.Errorf("value: %w", err)
	}
	op := a.Operator
	switch {
	case a.Response != "":
		want, known := responseCodes[a.Response]
		if !known {
			return false, "", fmt.Errorf("unknown response code %q", a.Response)
		}
		if !d.hasStatus {
			return false, "", fmt.Errorf("response assert on something that is not a response")
		}
		got := d.status
		switch op {
		case "", "equals":
			if got == want {
				return true, fmt.Sprintf("response is %s (%d)", a.Response, want), nil
			}
			return false, fmt.Sprintf("expected response %s (%d), got %d %s", a.Response, want, got, http2text(got)), nil
		case "notEquals":
			if got != want {
				return true, "", nil
			}
			return false, fmt.Sprintf("expected a response other than %s (%d), got %d", a.Response, want, got), nil
		}
		return false, "", fmt.Errorf("operator %q does not apply to response", op)

	case a.ResponseCode != "":
		if !d.hasStatus {
			return false, "", fmt.Errorf("responseCode assert on something that is not a response")
		}
		want, err := x.sub(a.ResponseCode)
		if err != nil {
			return false, "", err
		}
		if (op == "" || op == "equals") && strings.Contains(want, ",") {
			op = "in"
		}
		if (op == "notEquals") && strings.Contains(want, ",") {
			op = "notIn"
		}
		ok, msg := compare(op, []string{strconv.Itoa(d.status)}, want)
		if !ok {
			msg = "responseCode: " + msg
		}
		return ok, msg, nil

	case a.ContentType != "":
		got := d.header.Get("Content-Type")
		mt, _, _ := mime.ParseMediaType(got)
		switch op {
		case "", "equals", "notEquals":
			match := contentTypeMatches(a.ContentType, mt)
			if match == (op != "notEquals") {
				return true, "", nil
			}
			if op == "notEquals" {
				return false, fmt.Sprintf("expected a Content-Type other than %s, got %q", a.ContentType, got), nil
			}
			return false, fmt.Sprintf("expected Content-Type %s, got %q", mimeType(a.ContentType, ""), got), nil
		}
		ok, msg := compare(op, present(got), mimeType(a.ContentType, ""))
		return ok, "Content-Type: " + msg, nil

	case a.HeaderField != "":
		var got []string
		if vs := d.header.Values(a.HeaderField); len(vs) > 0 {
			got = []string{strings.Join(vs, ", ")}
		}
		if op == "" && value == "" {
			op = "notEmpty"
		}
		ok, msg := compare(op, got, value)
		if !ok {
			msg = "header " + a.HeaderField + ": " + msg
		}
		return ok, msg, nil

	case a.Resource != "":
		typ, _, _ := resourceIdentity(d.body)
		ok, msg := compare(op, present(typ), a.Resource)
		if !ok {
			msg = "resource type: " + msg
		}
		return ok, msg, nil

	case a.MinimumID != "":
		min, err := x.doc(a.MinimumID, 0)
		if err != nil {
			return false, "", fmt.Errorf("minimumId: %w", err)
		}
		mt, err := parseTree(min.body)
		if err != nil {
			return false, "", fmt.Errorf("minimumId %s: %w", a.MinimumID, err)
		}
		at, err := parseTree(d.body)
		if err != nil {
			return false, fmt.Sprintf("minimumId %s: %v", a.MinimumID, err), nil
		}
		if m, ok := mt.(map[string]any); ok {
			c := make(map[string]any, len(m))
			for k, v := range m {
				if k != "meta" && k != "id" {
					c[k] = v
				}
			}
			mt = c
		}
		has, where := containsMinimum(mt, at, "")
		if has {
			return true, "", nil
		}
		return false, fmt.Sprintf("minimumId %s: the response lacks %s (or holds a different value there)", a.MinimumID, where), nil

	case a.NavigationLinks != nil:
		tree, err := parseTree(d.body)
		if err != nil {
			return false, "navigationLinks: " + err.Error(), nil
		}
		m, _ := tree.(map[string]any)
		if m == nil || m["resourceType"] != "Bundle" {
			return false, "navigationLinks: the response is not a Bundle", nil
		}
		var rels []string
		links, _ := m["link"].([]any)
		for _, l := range links {
			lm, _ := l.(map[string]any)
			rel, _ := lm["relation"].(string)
			u, _ := lm["url"].(string)
			switch rel {
			case "first", "previous", "prev", "next", "last":
				if u == "" {
					return false, fmt.Sprintf("navigationLinks: the %s link has no url", rel), nil
				}
				rels = append(rels, rel)
			}
		}
		if *a.NavigationLinks == (len(rels) > 0) {
			return true, "", nil
		}
		if *a.NavigationLinks {
			return false, "navigationLinks: expected first/previous/next/last links, got none", nil
		}
		return false, fmt.Sprintf("navigationLinks: expected no navigation links, got %s", strings.Join(rels, ", ")), nil

	case a.ValidateProfileID != "":
		ref, ok := x.profiles[a.ValidateProfileID]
		if !ok {
			return false, "", fmt.Errorf("validateProfileId: no profile with id %q in TestScript.profile", a.ValidateProfileID)
		}
		rt, issues, err := x.r.validator.Validate(d.body)
		if err != nil {
			return false, "", fmt.Errorf("validateProfileId: %w", err)
		}
		if fhirvalidate.HasErrors(issues) {
			return false, "validateProfileId " + a.ValidateProfileID + ": " + issueSummary(issues), nil
		}
		const core = "http://hl7.org/fhir/StructureDefinition/"
		if t := strings.TrimPrefix(ref, core); t != ref && t != rt && t != "Resource" && t != "DomainResource" {
			return false, fmt.Sprintf("validateProfileId %s: expected a %s, got %s", a.ValidateProfileID, t, rt), nil
		}
		return true, "", nil

	case a.RequestMethod != "":
		if d.ex == nil {
			return false, "", fmt.Errorf("requestMethod: no request to check")
		}
		ok, msg := compare(op, []string{strings.ToLower(d.ex.method)}, strings.ToLower(a.RequestMethod))
		if !ok {
			msg = "request method: " + msg
		}
		return ok, msg, nil

	case a.RequestURL != "":
		if d.ex == nil {
			return false, "", fmt.Errorf("requestURL: no request to check")
		}
		want, err := x.sub(a.RequestURL)
		if err != nil {
			return false, "", fmt.Errorf("requestURL: %w", err)
		}
		got := d.ex.url
		// A relative URL is compared with the request URL relative to the base.
		if !isAbsoluteURL(want) && (op == "" || op == "equals" || op == "notEquals" || op == "in" || op == "notIn") {
			got = strings.TrimPrefix(strings.TrimPrefix(got, x.base), "/")
			want = strings.TrimPrefix(want, "/")
		}
		ok, msg := compare(op, []string{got}, want)
		if !ok {
			msg = "request URL: " + msg
		}
		return ok, msg, nil

	case a.Expression != "" || a.Path != "" || a.CompareToSourceID != "":
		return x.checkValue(a, d, op, value)
	}
	return false, "", fmt.Errorf("the assert checks nothing (no response, responseCode, contentType, headerField, expression, path, resource, minimumId, navigationLinks, validateProfileId, requestMethod or requestURL)")
}

// checkValue evaluates expression/path asserts, alone or compared with a source fixture.
func (x *run) checkValue(a *assertion, d document, op, value string) (bool, string, error) {
	expr, path := a.Expression, a.Path
	if expr == "" && path == "" {
		expr, path = a.CompareToSourceExpression, a.CompareToSourcePath
	}
	// ${name} works in expressions and paths too (as %name does in FHIRPath).
	var err error
	if expr, err = substitute(expr, x.lookupAt(0), false, true); err != nil {
		return false, "", err
	}
	if path, err = substitute(path, x.lookupAt(0), false, true); err != nil {
		return false, "", err
	}
	what := "expression " + expr
	if expr == "" {
		what = "path " + path
	}
	tree, perr := parseTree(d.body)
	if perr != nil {
		return false, what + ": " + perr.Error(), nil
	}
	var actual []string
	var boolean *bool
	if expr != "" {
		vars, err := x.fhirpathVars(expr)
		if err != nil {
			return false, "", err
		}
		c, err := evalFHIRPath(expr, tree, vars)
		if err != nil {
			return false, "", fmt.Errorf("%s: %w", what, err)
		}
		actual = collectionStrings(c)
		if b, ok := c.Bool(); ok {
			boolean = &b
		}
	} else {
		actual, err = pathStrings(path, tree)
		if err != nil {
			return false, "", fmt.Errorf("%s: %w", what, err)
		}
	}
	if a.CompareToSourceID != "" {
		src, err := x.doc(a.CompareToSourceID, 0)
		if err != nil {
			return false, "", fmt.Errorf("compareToSourceId: %w", err)
		}
		st, err := parseTree(src.body)
		if err != nil {
			return false, "", fmt.Errorf("compareToSourceId %s: %w", a.CompareToSourceID, err)
		}
		var want []string
		switch {
		case a.CompareToSourceExpression != "":
			vars, err := x.fhirpathVars(a.CompareToSourceExpression)
			if err != nil {
				return false, "", err
			}
			c, err := evalFHIRPath(a.CompareToSourceExpression, st, vars)
			if err != nil {
				return false, "", fmt.Errorf("compareToSourceExpression: %w", err)
			}
			want = collectionStrings(c)
		case a.CompareToSourcePath != "":
			want, err = pathStrings(a.CompareToSourcePath, st)
			if err != nil {
				return false, "", fmt.Errorf("compareToSourcePath: %w", err)
			}
		default:
			return false, "", fmt.Errorf("compareToSourceId needs compareToSourceExpression or compareToSourcePath")
		}
		switch op {
		case "", "equals", "notEquals":
			same := strings.Join(actual, "\x00") == strings.Join(want, "\x00")
			if same == (op != "notEquals") {
				return true, "", nil
			}
			if op == "notEquals" {
				return false, fmt.Sprintf("%s: expected a value other than the source's %s, got the same", what, showValues(want)), nil
			}
			return false, fmt.Sprintf("%s: expected %s (from %s), got %s", what, showValues(want), a.CompareToSourceID, showValues(actual)), nil
		}
		ok, msg := compare(op, actual, strings.Join(want, ","))
		if !ok {
			msg = what + ": " + msg
		}
		return ok, msg, nil
	}
	if op == "eval" || op == "" && value == "" {
		if boolean != nil && *boolean {
			return true, "", nil
		}
		return false, fmt.Sprintf("%s: expected true, got %s", what, showValues(actual)), nil
	}
	ok, msg := compare(op, actual, value)
	if !ok {
		msg = what + ": " + msg
	}
	return ok, msg, nil
}

func present(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// contentTypeMatches reports whether the media type mt satisfies a TestScript content-type
// code or mime type: json accepts every JSON flavour FHIR servers send, xml every XML one.
func contentTypeMatches(code, mt string) bool {
	mt = strings.ToLower(mt)
	switch strings.ToLower(code) {
	case "json":
		return mt == "application/fhir+json" || mt == "application/json" || mt == "application/json+fhir" || mt == "text/json"
	case "xml":
		return mt == "application/fhir+xml" || mt == "application/xml" || mt == "application/xml+fhir" || mt == "text/xml"
	case "ttl":
		return mt == "text/turtle" || mt == "application/x-turtle"
	case "none":
		return mt == ""
	}
	want, _, err := mime.ParseMediaType(code)
	if err != nil {
		want = code
	}
	return strings.EqualFold(want, mt)
}

func issueSummary(issues []fhirvalidate.Issue) string {
	var parts []string
	for _, is := range issues {
		if is.Severity != "error" && is.Severity != "fatal" {
			continue
		}
		s := is.Diagnostics
		if len(is.Expression) > 0 {
			s = strings.Join(is.Expression, ",") + ": " + s
		}
		parts = append(parts, s)
		if len(parts) == 3 {
			break
		}
	}
	return strings.Join(parts, "; ")
}

func http2text(code int) string {
	for k, v := range responseCodes {
		if v == code {
			return "(" + k + ")"
		}
	}
	return ""
}
