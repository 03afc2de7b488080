package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
)

// dispatch routes a request to its interaction. It returns the interaction name for
// metrics and logs.
func (s *Server) dispatch(ctx context.Context, req *request) (*response, string, error) {
	segs := req.segs
	m := req.method
	notAllowed := func(what string) (*response, string, error) {
		return nil, "other", errorf(http.StatusMethodNotAllowed, "not-supported", "%s is not allowed on %s", m, what)
	}
	if len(segs) == 0 {
		switch m {
		case http.MethodPost:
			if req.inBundle {
				return nil, "other", errorf(http.StatusBadRequest, "not-supported", "a Bundle entry cannot be a nested transaction or batch")
			}
			resp, err := s.bundle(ctx, req)
			return resp, "transaction", err
		case http.MethodGet:
			resp, err := s.searchSystem(ctx, req)
			return resp, "search-system", err
		}
		return notAllowed("the FHIR base")
	}
	first := segs[0]
	switch first {
	case "metadata":
		if len(segs) == 1 && m == http.MethodGet {
			resp, err := s.capabilities(req)
			return resp, "capabilities", err
		}
		return notAllowed("metadata")
	case "$reindex":
		if len(segs) == 1 {
			resp, err := s.operation(ctx, req, "", "", "$reindex")
			return resp, "operation", err
		}
	case "_history":
		if len(segs) == 1 && m == http.MethodGet {
			resp, err := s.history(ctx, req, "", "")
			return resp, "history-system", err
		}
		return notAllowed("_history")
	}
	if !s.types[first] {
		return nil, "other", errorf(http.StatusNotFound, "not-supported", "unknown resource type %q", first)
	}
	typ := first
	switch len(segs) {
	case 1:
		switch m {
		case http.MethodGet:
			resp, err := s.search(ctx, req, typ)
			return resp, "search-type", err
		case http.MethodPost:
			resp, err := s.create(ctx, req, typ)
			return resp, "create", err
		case http.MethodPut:
			resp, err := s.conditionalUpdate(ctx, req, typ)
			return resp, "update", err
		case http.MethodPatch:
			resp, err := s.conditionalPatch(ctx, req, typ)
			return resp, "patch", err
		case http.MethodDelete:
			resp, err := s.conditionalDelete(ctx, req, typ)
			return resp, "delete", err
		}
		return notAllowed(typ)
	case 2:
		second := segs[1]
		switch {
		case second == "_history":
			if m == http.MethodGet {
				resp, err := s.history(ctx, req, typ, "")
				return resp, "history-type", err
			}
			return notAllowed(typ + "/_history")
		case second == "_search":
			if m == http.MethodPost {
				resp, err := s.search(ctx, req, typ)
				return resp, "search-type", err
			}
			return notAllowed(typ + "/_search")
		case strings.HasPrefix(second, "$"):
			resp, err := s.operation(ctx, req, typ, "", second)
			return resp, "operation", err
		}
		id := second
		switch m {
		case http.MethodGet, http.MethodHead:
			resp, err := s.read(ctx, req, typ, id)
			return resp, "read", err
		case http.MethodPut:
			resp, err := s.update(ctx, req, typ, id)
			return resp, "update", err
		case http.MethodPatch:
			resp, err := s.patch(ctx, req, typ, id)
			return resp, "patch", err
		case http.MethodDelete:
			resp, err := s.delete(ctx, req, typ, id)
			return resp, "delete", err
		}
		return notAllowed(typ + "/[id]")
	case 3:
		id, third := segs[1], segs[2]
		if third == "_history" {
			if m == http.MethodGet {
				resp, err := s.history(ctx, req, typ, id)
				return resp, "history-instance", err
			}
			return notAllowed(typ + "/[id]/_history")
		}
		if strings.HasPrefix(third, "$") {
			resp, err := s.operation(ctx, req, typ, id, third)
			return resp, "operation", err
		}
		if s.types[third] {
			if m == http.MethodGet {
				resp, err := s.searchCompartment(ctx, req, typ, id, third)
				return resp, "search-compartment", err
			}
			return notAllowed(typ + "/[id]/" + third)
		}
	case 4:
		id, third, vid := segs[1], segs[2], segs[3]
		if third == "_history" {
			if m == http.MethodGet {
				v, err := strconv.ParseInt(vid, 10, 64)
				if err != nil || v < 1 {
					return nil, "vread", errorf(http.StatusNotFound, "not-found", "no version %q of %s/%s", vid, typ, id)
				}
				resp, ferr := s.vread(ctx, req, typ, id, v)
				return resp, "vread", ferr
			}
			return notAllowed(typ + "/[id]/_history/[vid]")
		}
	}
	return nil, "other", errorf(http.StatusNotFound, "not-found", "no such FHIR endpoint: %s", strings.Join(segs, "/"))
}
