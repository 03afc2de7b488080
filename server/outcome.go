package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirvalidate"
)

// Error is a FHIR error: an HTTP status and the OperationOutcome issues that explain it.
// Every error a handler returns becomes an OperationOutcome in exactly one place
// (outcomeFor), so clients always get one with the right status.
type Error struct {
	Status int
	Issues []fhirvalidate.Issue
	// cause is internal detail for logs; it is never sent to clients.
	cause error
}

func (e *Error) Error() string {
	if len(e.Issues) > 0 {
		return fmt.Sprintf("%d %s", e.Status, e.Issues[0].Diagnostics)
	}
	return fmt.Sprintf("%d", e.Status)
}

func (e *Error) Unwrap() error { return e.cause }

// errorf builds an Error with one issue of severity error.
func errorf(status int, code string, format string, args ...any) *Error {
	return &Error{Status: status, Issues: []fhirvalidate.Issue{{Severity: "error", Code: code, Diagnostics: fmt.Sprintf(format, args...)}}}
}

// withExpr adds a FHIRPath expression to the first issue.
func (e *Error) withExpr(expr ...string) *Error {
	if len(e.Issues) > 0 {
		e.Issues[0].Expression = append(e.Issues[0].Expression, expr...)
	}
	return e
}

// asError maps any error to an *Error: store sentinels to their statuses, everything else
// to a 500 whose detail stays in the logs.
func asError(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	switch {
	case errors.Is(err, fhirstore.ErrNotFound):
		return errorf(http.StatusNotFound, "not-found", "resource not found")
	case errors.Is(err, fhirstore.ErrGone):
		return errorf(http.StatusGone, "deleted", "resource deleted")
	case errors.Is(err, fhirstore.ErrVersionConflict):
		return errorf(http.StatusPreconditionFailed, "conflict", "version conflict: the resource has changed")
	case errors.Is(err, fhirstore.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "%s", trimPrefix(err))
	case errors.Is(err, fhirstore.ErrInvalid):
		return errorf(http.StatusBadRequest, "invalid", "%s", trimPrefix(err))
	}
	e := errorf(http.StatusInternalServerError, "exception", "internal server error")
	e.cause = err
	return e
}

func trimPrefix(err error) string {
	return err.Error()
}

// outcome is the JSON shape of an OperationOutcome.
type outcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

type outcomeIssue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// outcomeJSON encodes issues as an OperationOutcome.
func outcomeJSON(issues []fhirvalidate.Issue) []byte {
	o := outcome{ResourceType: "OperationOutcome", Issue: make([]outcomeIssue, 0, len(issues))}
	for _, is := range issues {
		o.Issue = append(o.Issue, outcomeIssue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics, Expression: is.Expression})
	}
	if len(o.Issue) == 0 {
		o.Issue = append(o.Issue, outcomeIssue{Severity: "information", Code: "informational", Diagnostics: "All OK"})
	}
	b, _ := json.Marshal(o)
	return b
}

// info returns an informational OperationOutcome with one message.
func info(msg string) []byte {
	return outcomeJSON([]fhirvalidate.Issue{{Severity: "information", Code: "informational", Diagnostics: msg}})
}
