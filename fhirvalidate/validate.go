// Package fhirvalidate validates FHIR R4 resources given as JSON before Vigil stores them.
//
// Every write (REST create, update and patch results, each transaction or batch entry,
// $validate, TestScript validateProfileId asserts) goes through [Validator.Validate]. It
// combines two passes:
//
//   - structural validation by google/fhir/go's validating JSON parser (structure,
//     cardinality, choice types, required elements, required-binding codes, primitive
//     syntax, reference target types), and
//   - one cheap walk over the JSON for what that parser does not check: empty strings,
//     objects and arrays, null property values, duplicate or wrongly cased property
//     names, active content in narrative (txt-1, txt-2), Bundle rules (bdl-1 .. bdl-12
//     and the transaction/batch request rules), extensions (ext-1), contained resources
//     (dom-2, dom-4, dom-5), and the content of contained resources and of
//     Parameters.parameter.resource, which the parser keeps as opaque values.
//
// Problems come back as [Issue] values shaped like OperationOutcome.issue, each with a
// FHIRPath expression naming the offending element. Diagnostics never repeat element
// values, so issues may be logged without leaking PHI.
package fhirvalidate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

// Issue severities, as in OperationOutcome.issue.severity.
const (
	SeverityFatal       = "fatal"
	SeverityError       = "error"
	SeverityWarning     = "warning"
	SeverityInformation = "information"
)

// Issue type codes used by this package (a subset of the FHIR IssueType value set).
const (
	CodeStructure    = "structure"
	CodeRequired     = "required"
	CodeValue        = "value"
	CodeInvariant    = "invariant"
	CodeInvalid      = "invalid"
	CodeCodeInvalid  = "code-invalid"
	CodeNotSupported = "not-supported"
	CodeSecurity     = "security"
	CodeTooCostly    = "too-costly"
)

// Issue is one problem found in a resource, shaped like an OperationOutcome.issue.
type Issue struct {
	// Severity is fatal, error, warning or information (OperationOutcome.issue.severity).
	Severity string
	// Code is an IssueType code: structure, required, value, invariant, code-invalid,
	// not-supported, security, ...
	Code string
	// Diagnostics is a human readable explanation. It names elements and rules but never
	// repeats element values, so it carries no PHI beyond the element path.
	Diagnostics string
	// Expression holds the FHIRPath location of the problem, e.g. "Observation.status" or
	// "Bundle.entry[2].request". It is empty when the problem concerns the whole document.
	Expression []string
}

// Options configures a Validator. The zero value selects the defaults.
type Options struct {
	// MaxNestingDepth bounds how deeply JSON objects and arrays may nest; deeper input is
	// rejected with a fatal issue before any further parsing. Default 64.
	MaxNestingDepth int
	// MaxIssues bounds the number of issues returned for one resource; when more are
	// found, the list is cut and ends with a too-costly information issue. Default 100.
	MaxIssues int
}

// Defaults used when Options leaves a field at zero.
const (
	DefaultMaxNestingDepth = 64
	DefaultMaxIssues       = 100
)

// Validator validates FHIR R4 JSON resources. Build one with New and share it: it is safe
// for concurrent use.
type Validator struct {
	opts Options
	um   *jsonformat.Unmarshaller
	err  error // construction failure, reported by every Validate call
}

// New returns a Validator configured by opts.
func New(opts Options) *Validator {
	if opts.MaxNestingDepth <= 0 {
		opts.MaxNestingDepth = DefaultMaxNestingDepth
	}
	if opts.MaxIssues <= 0 {
		opts.MaxIssues = DefaultMaxIssues
	}
	v := &Validator{opts: opts}
	um, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		v.err = fmt.Errorf("fhirvalidate: create R4 unmarshaller: %w", err)
		return v
	}
	// The library counts path segments, which exceed JSON nesting by one per nested
	// resource; our own walk enforces the real limit first.
	um.MaxNestingDepth = opts.MaxNestingDepth + 8
	v.um = um
	return v
}

// HasErrors reports whether issues holds an issue of severity error or fatal, that is,
// whether the resource must be rejected.
func HasErrors(issues []Issue) bool {
	for _, is := range issues {
		if is.Severity == SeverityError || is.Severity == SeverityFatal {
			return true
		}
	}
	return false
}

// Validate checks one resource given as FHIR JSON. It returns the resourceType and the
// issues; the resource is valid when no issue has severity error or fatal (see HasErrors).
// err is reserved for internal failures: bad input always yields issues, never an error.
func (v *Validator) Validate(body []byte) (resourceType string, issues []Issue, err error) {
	if v.err != nil {
		return "", nil, v.err
	}
	w := newWalker(body, v.opts.MaxNestingDepth)
	w.maxIssues = v.opts.MaxIssues
	w.run()
	resourceType = w.rootType
	issues = w.issues
	if w.fatal {
		return resourceType, v.finish(issues, w.dropped), nil
	}

	// Elements our walk already rejected get no second, vaguer issue from the library.
	var seen map[string]bool
	for _, is := range issues {
		if len(is.Expression) > 0 && is.Severity == SeverityError {
			if seen == nil {
				seen = make(map[string]bool, len(issues))
			}
			seen[is.Expression[0]] = true
		}
	}
	lib, err := v.library(body, w, "")
	if err != nil {
		return resourceType, nil, err
	}
	for _, is := range lib {
		if len(is.Expression) > 0 && seen[is.Expression[0]] {
			continue
		}
		issues = append(issues, is)
	}
	return resourceType, v.finish(issues, w.dropped), nil
}

// library validates body, whose walk is w, with google/fhir/go and returns the issues
// found, their paths under prefix (the resource's own type when prefix is empty).
//
// The library stores two kinds of nested resources as opaque protobuf Any values:
// contained resources, which it parses but does not validate, and
// Parameters.parameter.resource, which it cannot parse at all (it rejects every property
// of such a resource as unknown). Contained resources are validated again on their own;
// parameter resources are blanked out as {} for the library and validated on their own.
func (v *Validator) library(body []byte, w *walker, prefix string) ([]Issue, error) {
	root := prefix
	if root == "" {
		root = w.rootType
	}
	params := outermost(w.params)
	masked := body
	if len(params) > 0 {
		masked = make([]byte, 0, len(body))
		last := 0
		for _, p := range params {
			masked = append(masked, body[last:p.start]...)
			masked = append(masked, "{}"...)
			last = p.end
		}
		masked = append(masked, body[last:]...)
	}
	issues, parsed, err := v.libraryIssues(masked, prefix)
	if err != nil {
		return nil, err
	}
	if parsed {
		for _, c := range w.contained {
			if within(c, params) {
				continue // validated with the parameter resource that holds it
			}
			more, _, err := v.libraryIssues(body[c.start:c.end], root+c.rel)
			if err != nil {
				return nil, err
			}
			issues = append(issues, more...)
		}
	}
	for _, p := range params {
		sub := body[p.start:p.end]
		nw := newWalker(sub, v.opts.MaxNestingDepth)
		nw.run()
		if nw.fatal {
			// Only a missing or unknown resourceType can make the walk of a part fail
			// when the walk of the whole succeeded.
			for _, is := range nw.issues {
				if is.Severity == SeverityFatal {
					is.Severity, is.Expression = SeverityError, []string{root + p.rel}
					issues = append(issues, is)
				}
			}
			continue
		}
		more, err := v.library(sub, nw, root+p.rel)
		if err != nil {
			return nil, err
		}
		issues = append(issues, more...)
	}
	return issues, nil
}

// outermost returns the spans not nested in another, in input order.
func outermost(spans []span) []span {
	if len(spans) == 0 {
		return nil
	}
	sorted := slices.Clone(spans)
	slices.SortFunc(sorted, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	out := sorted[:0]
	end := -1
	for _, s := range sorted {
		if s.start < end {
			continue
		}
		out = append(out, s)
		end = s.end
	}
	return out
}

// within reports whether s lies inside one of spans.
func within(s span, spans []span) bool {
	for _, o := range spans {
		if s.start >= o.start && s.end <= o.end {
			return true
		}
	}
	return false
}

// finish orders issues deterministically (most severe first, then by location) and
// applies the MaxIssues cap.
func (v *Validator) finish(issues []Issue, dropped int) []Issue {
	slices.SortStableFunc(issues, func(a, b Issue) int {
		if c := cmp.Compare(severityRank(a.Severity), severityRank(b.Severity)); c != 0 {
			return c
		}
		return cmp.Compare(firstExpr(a), firstExpr(b))
	})
	if len(issues) > v.opts.MaxIssues {
		dropped += len(issues) - v.opts.MaxIssues
		issues = issues[:v.opts.MaxIssues:v.opts.MaxIssues]
	}
	if dropped > 0 {
		issues = append(issues, Issue{
			Severity:    SeverityInformation,
			Code:        CodeTooCostly,
			Diagnostics: fmt.Sprintf("%d further issues were not reported", dropped),
		})
	}
	return issues
}

func severityRank(s string) int {
	switch s {
	case SeverityFatal:
		return 0
	case SeverityError:
		return 1
	case SeverityWarning:
		return 2
	}
	return 3
}

func firstExpr(is Issue) string {
	if len(is.Expression) == 0 {
		return ""
	}
	return is.Expression[0]
}

// libraryIssues runs google/fhir/go's validating parser over one resource and converts
// what it finds into Issues. A non-empty prefix replaces the resource type at the head of
// every path (used for contained resources). parsed reports whether parsing succeeded, in
// which case the validation issues are complete.
func (v *Validator) libraryIssues(body []byte, prefix string) (issues []Issue, parsed bool, err error) {
	// A panic in the library on some input must not take the server down: it becomes an
	// internal error for this request.
	defer func() {
		if r := recover(); r != nil {
			issues, parsed, err = nil, false, fmt.Errorf("fhirvalidate: google/fhir/go panicked: %v", r)
		}
	}()
	_, outcome, perr := v.um.UnmarshalWithOutcome(body)
	if perr != nil {
		list, ok := unmarshalErrors(perr)
		if !ok {
			return nil, false, fmt.Errorf("fhirvalidate: parse resource: %w", perr)
		}
		for _, e := range list {
			issues = append(issues, parseErrorIssue(e, prefix))
		}
		return issues, false, nil
	}
	if outcome == nil || outcome.R4Outcome == nil {
		return nil, true, nil
	}
	for _, oi := range outcome.R4Outcome.GetIssue() {
		issues = append(issues, outcomeIssue(
			strings.ToLower(oi.GetSeverity().GetValue().String()),
			oi.GetDiagnostics().GetValue(),
			oi.GetExpression(),
			prefix,
		))
	}
	return issues, true, nil
}

// exprValue is the part of a datatypes String proto that outcomeIssue needs.
type exprValue interface{ GetValue() string }

// outcomeIssue converts one OperationOutcome issue reported by the library's validation
// step. Those issues all carry the code "value"; the diagnostics tell a missing required
// element apart, whose expression then names the element rather than its parent.
func outcomeIssue[E exprValue](severity, diag string, exprs []E, prefix string) Issue {
	is := Issue{Severity: severity, Code: CodeValue}
	if is.Severity == "" || is.Severity == "invalid_uninitialized" {
		is.Severity = SeverityError
	}
	// The library prefixes its diagnostics with `error at "<path>": `; the path is already
	// in the expression.
	if _, rest, ok := strings.Cut(diag, `": `); ok && strings.HasPrefix(diag, "error at ") {
		diag = rest
	}
	path := ""
	if len(exprs) > 0 {
		path = normalizePath(jsonChoicePath(exprs[0].GetValue()), prefix)
	}
	if field, ok := strings.CutPrefix(diag, "missing required field "); ok {
		is.Code = CodeRequired
		field = strings.Trim(field, `"`)
		if path != "" {
			path += "." + field
		}
		diag = fmt.Sprintf("missing required element %q", field)
	}
	is.Diagnostics = diag
	if path != "" {
		is.Expression = []string{path}
	}
	return is
}

// parseError is what the library's parse errors (an unexported struct type) tell us.
type parseError struct {
	path, details, diagnostics string
}

// parseErrorIssue converts one parse error of the library. The library's diagnostics often
// quote the offending value, so they are only used where they name a property or type.
func parseErrorIssue(e parseError, prefix string) Issue {
	is := Issue{Severity: SeverityError, Code: CodeStructure, Diagnostics: e.details}
	path := normalizePath(e.path, prefix)
	switch {
	case e.details == "unknown field":
		// The path names the object; the diagnostics, the quoted property.
		name := strings.Trim(e.diagnostics, `"`)
		if path != "" {
			path += "." + name
		}
		is.Diagnostics = fmt.Sprintf("unknown element %q", name)
	case e.details == "code type mismatch":
		is.Code = CodeCodeInvalid
		is.Diagnostics = "code is not in the required value set"
		if _, typ, ok := strings.Cut(e.diagnostics, " is not a "); ok {
			is.Diagnostics = fmt.Sprintf("code is not in the required value set (%s)", typ)
		}
	case e.details == "unknown resource type":
		is.Code = CodeNotSupported
		// The path ends with the unknown type name, which is no element.
		if i := strings.LastIndexByte(path, '.'); i > 0 {
			path = path[:i]
		}
		is.Diagnostics = fmt.Sprintf("unknown resource type %.66s", e.diagnostics)
	case strings.HasPrefix(e.details, "missing required field"):
		is.Code = CodeRequired
	case strings.HasPrefix(e.details, "cannot accept multiple values"):
		is.Diagnostics = fmt.Sprintf("%s (%s)", e.details, strings.Trim(e.diagnostics, `"`))
	case strings.HasPrefix(e.details, "expected "), strings.HasPrefix(e.details, "invalid "),
		strings.HasPrefix(e.details, "non-negative integer"):
		is.Diagnostics = "invalid value: " + e.details
	}
	if path != "" {
		is.Expression = []string{path}
	}
	return is
}
