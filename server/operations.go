package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirvalidate"
)

// operation serves type- and instance-level $operations.
func (s *Server) operation(ctx context.Context, req *request, typ, id, op string) (*response, error) {
	switch op {
	case "$validate":
		if req.method != http.MethodPost && req.method != http.MethodGet {
			return nil, errorf(http.StatusMethodNotAllowed, "not-supported", "$validate takes POST (or GET on an instance)")
		}
		return s.validateOp(ctx, req, typ, id)
	case "$lastn":
		if typ == "Observation" && id == "" && req.method == http.MethodGet {
			return s.lastN(ctx, req)
		}
	case "$everything":
		if typ == "Patient" && id != "" && req.method == http.MethodGet {
			return s.everything(ctx, req, id)
		}
	case "$reindex":
		if id == "" && req.method == http.MethodPost {
			return s.reindex(ctx, typ)
		}
	case "$ingest":
		if typ == "Device" && id == "" && req.method == http.MethodPost {
			return s.ingestOp(ctx, req)
		}
	}
	if req.method != http.MethodGet && req.method != http.MethodPost {
		return nil, errorf(http.StatusMethodNotAllowed, "not-supported", "%s is not allowed on %s", req.method, op)
	}
	switch op {
	case "$lastn", "$everything", "$ingest", "$reindex":
		return nil, errorf(http.StatusNotFound, "not-supported", "operation %s is served at GET Observation/$lastn, GET Patient/[id]/$everything, POST Device/$ingest and POST [base]/[type]/$reindex", op)
	}
	return nil, errorf(http.StatusNotFound, "not-supported", "operation %s is not supported on %s", op, typ)
}

// validateOp implements $validate: the body is the resource, or a Parameters with a
// `resource` part (and optional `mode`). Instance level without a resource validates the
// stored version; mode=delete checks that the resource may be deleted. The answer is 200
// with an OperationOutcome whether or not the resource is valid.
func (s *Server) validateOp(ctx context.Context, req *request, typ, id string) (*response, error) {
	var resource []byte
	mode := req.query.Get("mode")
	if len(req.body) > 0 {
		m, err := decodeJSON(req.body)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "structure", "invalid JSON: %v", err)
		}
		if m["resourceType"] == "Parameters" && typ != "Parameters" {
			parts, _ := m["parameter"].([]any)
			for _, p := range parts {
				pm, _ := p.(map[string]any)
				switch pm["name"] {
				case "resource":
					resource, _ = json.Marshal(pm["resource"])
				case "mode":
					if v, ok := pm["valueCode"].(string); ok {
						mode = v
					}
				}
			}
		} else {
			resource = req.body
		}
	}
	if mode == "delete" {
		if id == "" {
			return nil, errorf(http.StatusBadRequest, "invalid", "mode=delete needs an instance ($validate on %s/[id])", typ)
		}
		if _, err := s.store.Read(ctx, typ, id); err != nil {
			if errors.Is(err, fhirstore.ErrNotFound) || errors.Is(err, fhirstore.ErrGone) {
				return nil, errorf(http.StatusNotFound, "not-found", "%s/%s is not known", typ, id)
			}
			return nil, asError(err)
		}
		return &response{status: http.StatusOK, body: info("the resource may be deleted")}, nil
	}
	if resource == nil {
		if id == "" {
			return nil, errorf(http.StatusBadRequest, "required", "$validate needs a resource in the body")
		}
		r, err := s.store.Read(ctx, typ, id)
		if err != nil {
			return nil, asError(err)
		}
		resource = r.Body
	}
	rt, issues, err := s.validator.Validate(resource)
	if err != nil {
		return nil, asError(err)
	}
	if rt != "" && rt != typ {
		issues = append(issues, fhirvalidate.Issue{Severity: "error", Code: "invalid",
			Diagnostics: "resourceType " + rt + " does not match the endpoint's type " + typ, Expression: []string{rt}})
	}
	if id != "" && mode == "update" {
		if m, err := decodeJSON(resource); err == nil && m["id"] != id {
			issues = append(issues, fhirvalidate.Issue{Severity: "error", Code: "invalid",
				Diagnostics: "the resource id does not match the URL id " + id, Expression: []string{typ + ".id"}})
		}
	}
	return &response{status: http.StatusOK, body: outcomeJSON(issues)}, nil
}

// reindex serves POST [base]/$reindex and POST [base]/[type]/$reindex: the search index rows
// of every live resource (of the type) are rebuilt from the current search parameters, in
// batches of one transaction each, with progress in the logs and the count in the answer.
// It is what makes a new custom SearchParameter apply to resources stored before it.
func (s *Server) reindex(ctx context.Context, typ string) (*response, error) {
	start := time.Now()
	last := time.Now()
	done, total := 0, 0
	err := s.store.Reindex(ctx, typ, func(d, t int) {
		done, total = d, t
		if time.Since(last) > 2*time.Second || d == t {
			last = time.Now()
			s.log.Info("reindex progress", "resource_type", typ, "done", d, "total", t)
		}
	})
	if err != nil {
		return nil, asError(err)
	}
	what := "resources"
	if typ != "" {
		what = typ + " resources"
	}
	return &response{status: http.StatusOK, body: info(fmt.Sprintf("reindexed %d of %d %s in %s", done, total, what, time.Since(start).Round(time.Millisecond)))}, nil
}
