package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirvalidate"
)

// parseResource validates body as a resource of type typ and decodes it. Every write
// goes through here.
func (s *Server) parseResource(body []byte, typ string) (map[string]any, *Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errorf(http.StatusBadRequest, "required", "the request has no body: a %s resource is required", typ)
	}
	rt, issues, err := s.validator.Validate(body)
	if err != nil {
		e := errorf(http.StatusInternalServerError, "exception", "validation failed")
		e.cause = err
		return nil, e
	}
	if rt != "" && typ != "" && rt != typ && s.types[rt] {
		return nil, errorf(http.StatusBadRequest, "invalid", "resourceType %q does not match the endpoint's type %s", rt, typ).withExpr(rt)
	}
	if fhirvalidate.HasErrors(issues) {
		return nil, &Error{Status: http.StatusBadRequest, Issues: issues}
	}
	m, derr := decodeJSON(body)
	if derr != nil {
		return nil, errorf(http.StatusBadRequest, "structure", "invalid JSON: %v", derr)
	}
	return m, nil
}

func (s *Server) read(ctx context.Context, req *request, typ, id string) (*response, error) {
	r, err := s.store.Read(ctx, typ, id)
	if err != nil {
		if errors.Is(err, fhirstore.ErrGone) {
			fe := errorf(http.StatusGone, "deleted", "%s/%s was deleted", typ, id)
			return nil, fe
		}
		if errors.Is(err, fhirstore.ErrNotFound) {
			return nil, errorf(http.StatusNotFound, "not-found", "%s/%s is not known", typ, id)
		}
		return nil, asError(err)
	}
	if notModified(req, r) {
		return &response{status: http.StatusNotModified, res: r}, nil
	}
	return &response{status: http.StatusOK, res: r, body: r.Body}, nil
}

// notModified applies If-None-Match and If-Modified-Since to a read.
func notModified(req *request, r *fhirstore.Resource) bool {
	if inm := req.get("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			if v, err := parseETag(t); err == nil && v == r.Version {
				return true
			}
			if strings.TrimSpace(t) == "*" {
				return true
			}
		}
		return false
	}
	if ims := req.get("If-Modified-Since"); ims != "" {
		if t, ok := parseHTTPDate(ims); ok && !r.LastUpdated.Truncate(1e9).After(t) {
			return true
		}
	}
	return false
}

func (s *Server) vread(ctx context.Context, req *request, typ, id string, v int64) (*response, error) {
	r, err := s.store.VRead(ctx, typ, id, v)
	if err != nil {
		if errors.Is(err, fhirstore.ErrGone) {
			return nil, errorf(http.StatusGone, "deleted", "version %d of %s/%s is a deletion", v, typ, id)
		}
		if errors.Is(err, fhirstore.ErrNotFound) {
			return nil, errorf(http.StatusNotFound, "not-found", "%s/%s has no version %d", typ, id, v)
		}
		return nil, asError(err)
	}
	return &response{status: http.StatusOK, res: r, body: r.Body}, nil
}

func (s *Server) create(ctx context.Context, req *request, typ string) (*response, error) {
	body, fe := s.parseResource(req.body, typ)
	if fe != nil {
		return nil, fe
	}
	ifNoneExist := req.get("If-None-Exist")
	return s.inTx(ctx, func(tx *fhirstore.Tx) (*response, error) {
		return s.createTx(ctx, tx, typ, "", body, ifNoneExist)
	})
}

// createTx creates body in tx. id is the id to use (a transaction pre-assigns one for a
// urn:uuid fullUrl); empty means a new server id. ifNoneExist makes it conditional.
func (s *Server) createTx(ctx context.Context, tx *fhirstore.Tx, typ, id string, body map[string]any, ifNoneExist string) (*response, error) {
	if ifNoneExist != "" {
		q, err := url.ParseQuery(strings.TrimPrefix(ifNoneExist, "?"))
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "invalid", "malformed If-None-Exist %q", ifNoneExist)
		}
		ids, fe := s.match(ctx, tx, typ, q, 2)
		if fe != nil {
			return nil, fe
		}
		switch len(ids) {
		case 0:
		case 1:
			r, err := tx.Read(ctx, typ, ids[0])
			if err != nil {
				return nil, err
			}
			return &response{status: http.StatusOK, res: r, body: r.Body, location: true,
				outcome: info("conditional create: a matching resource exists; nothing was created")}, nil
		default:
			return nil, errorf(http.StatusPreconditionFailed, "duplicate", "If-None-Exist matches more than one %s", typ)
		}
	}
	// id is empty or was just made with NewID (a transaction's pre-assigned id).
	if id == "" {
		id = fhirstore.NewID()
	}
	r, err := tx.CreateNew(ctx, typ, id, body)
	if err != nil {
		return nil, err
	}
	return &response{status: http.StatusCreated, res: r, body: r.Body, location: true,
		outcome: info(fmt.Sprintf("created %s/%s version %d", typ, r.ID, r.Version))}, nil
}

func (s *Server) update(ctx context.Context, req *request, typ, id string) (*response, error) {
	body, fe := s.parseResource(req.body, typ)
	if fe != nil {
		return nil, fe
	}
	bid, _ := body["id"].(string)
	if bid == "" {
		return nil, errorf(http.StatusBadRequest, "required", "the resource has no id: an update must carry the id of the URL (%s)", id).withExpr(typ + ".id")
	}
	if bid != id {
		return nil, errorf(http.StatusBadRequest, "invalid", "the resource id %q does not match the URL id %q", bid, id).withExpr(typ + ".id")
	}
	ifMatch, fe := ifMatchVersion(req)
	if fe != nil {
		return nil, fe
	}
	return s.inTx(ctx, func(tx *fhirstore.Tx) (*response, error) {
		return s.updateTx(ctx, tx, typ, id, body, ifMatch, "PUT")
	})
}

func ifMatchVersion(req *request) (int64, *Error) {
	im := req.get("If-Match")
	if im == "" {
		return 0, nil
	}
	return parseETag(im)
}

// updateTx writes body as the new version of typ/id. ifMatch > 0 requires that version to
// be current (412 otherwise). An update that changes nothing but meta.versionId and
// meta.lastUpdated creates no new version.
func (s *Server) updateTx(ctx context.Context, tx *fhirstore.Tx, typ, id string, body map[string]any, ifMatch int64, method string) (*response, error) {
	if !fhirstore.ValidID(id) {
		return nil, errorf(http.StatusBadRequest, "invalid", "%q is not a valid FHIR id", id).withExpr(typ + ".id")
	}
	unchanged := false
	r, created, err := tx.Update(ctx, typ, id, method, func(cur *fhirstore.Resource) (map[string]any, error) {
		if ifMatch > 0 {
			if cur == nil {
				return nil, errorf(http.StatusPreconditionFailed, "conflict", "If-Match W/\"%d\" but %s/%s does not exist", ifMatch, typ, id)
			}
			if cur.Version != ifMatch {
				return nil, errorf(http.StatusPreconditionFailed, "conflict", "If-Match W/\"%d\" but the current version of %s/%s is %d", ifMatch, typ, id, cur.Version)
			}
		}
		if cur != nil && sameContent(cur.Body, body) {
			unchanged = true
			return nil, nil
		}
		return body, nil
	})
	if err != nil {
		return nil, err
	}
	status := http.StatusOK
	msg := fmt.Sprintf("updated %s/%s to version %d", typ, id, r.Version)
	if created {
		status = http.StatusCreated
		msg = fmt.Sprintf("created %s/%s version %d", typ, id, r.Version)
	}
	if unchanged {
		msg = fmt.Sprintf("%s/%s is unchanged: no new version", typ, id)
	}
	return &response{status: status, res: r, body: r.Body, location: created, outcome: info(msg)}, nil
}

// sameContent reports whether stored and body differ only in meta.versionId and
// meta.lastUpdated.
func sameContent(stored []byte, body map[string]any) bool {
	old, err := decodeJSON(stored)
	if err != nil {
		return false
	}
	strip := func(m map[string]any) map[string]any {
		c := make(map[string]any, len(m))
		for k, v := range m {
			c[k] = v
		}
		if meta, ok := m["meta"].(map[string]any); ok {
			mc := make(map[string]any, len(meta))
			for k, v := range meta {
				if k != "versionId" && k != "lastUpdated" {
					mc[k] = v
				}
			}
			if len(mc) == 0 {
				delete(c, "meta")
			} else {
				c["meta"] = mc
			}
		}
		return c
	}
	// Both sides are decoded with UseNumber and map keys marshal sorted: equal content
	// encodes to equal bytes.
	a, _ := json.Marshal(strip(old))
	b, _ := json.Marshal(strip(body))
	return bytes.Equal(a, b)
}

func (s *Server) conditionalUpdate(ctx context.Context, req *request, typ string) (*response, error) {
	if len(conditionParams(req.query)) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalid", "a conditional update needs search parameters in the URL (PUT %s?identifier=...)", typ)
	}
	body, fe := s.parseResource(req.body, typ)
	if fe != nil {
		return nil, fe
	}
	ifMatch, fe := ifMatchVersion(req)
	if fe != nil {
		return nil, fe
	}
	return s.inTx(ctx, func(tx *fhirstore.Tx) (*response, error) {
		return s.conditionalUpdateTx(ctx, tx, typ, req.query, body, ifMatch)
	})
}

func (s *Server) conditionalUpdateTx(ctx context.Context, tx *fhirstore.Tx, typ string, q url.Values, body map[string]any, ifMatch int64) (*response, error) {
	ids, fe := s.match(ctx, tx, typ, q, 2)
	if fe != nil {
		return nil, fe
	}
	bid, _ := body["id"].(string)
	switch len(ids) {
	case 0:
		if bid != "" {
			return s.updateTx(ctx, tx, typ, bid, body, ifMatch, "PUT")
		}
		return s.createTx(ctx, tx, typ, "", body, "")
	case 1:
		if bid != "" && bid != ids[0] {
			return nil, errorf(http.StatusBadRequest, "invalid", "the resource id %q differs from the id %q of the resource the condition matches", bid, ids[0]).withExpr(typ + ".id")
		}
		return s.updateTx(ctx, tx, typ, ids[0], body, ifMatch, "PUT")
	}
	return nil, errorf(http.StatusPreconditionFailed, "multiple-matches", "the conditional update matches more than one %s", typ)
}

func (s *Server) delete(ctx context.Context, req *request, typ, id string) (*response, error) {
	ifMatch, fe := ifMatchVersion(req)
	if fe != nil {
		return nil, fe
	}
	return s.inTx(ctx, func(tx *fhirstore.Tx) (*response, error) {
		return s.deleteTx(ctx, tx, typ, id, ifMatch)
	})
}

func (s *Server) deleteTx(ctx context.Context, tx *fhirstore.Tx, typ, id string, ifMatch int64) (*response, error) {
	r, err := tx.Delete(ctx, typ, id, func(cur *fhirstore.Resource) error {
		if ifMatch > 0 && cur.Version != ifMatch {
			return errorf(http.StatusPreconditionFailed, "conflict", "If-Match W/\"%d\" but the current version of %s/%s is %d", ifMatch, typ, id, cur.Version)
		}
		return nil
	})
	switch {
	case errors.Is(err, fhirstore.ErrGone):
		if ifMatch > 0 && r.Version != ifMatch {
			return nil, errorf(http.StatusPreconditionFailed, "conflict", "If-Match W/\"%d\" but %s/%s is deleted (version %d)", ifMatch, typ, id, r.Version)
		}
		// Deleting a deleted resource changes nothing and succeeds.
		return &response{status: http.StatusNoContent, res: r}, nil
	case errors.Is(err, fhirstore.ErrNotFound):
		if ifMatch > 0 {
			return nil, errorf(http.StatusPreconditionFailed, "conflict", "If-Match W/\"%d\" but %s/%s does not exist", ifMatch, typ, id)
		}
		// The spec (http.html#delete): "Upon successful deletion, or if the resource does
		// not exist at all, the server should return either a 200 OK ... or a 204".
		return &response{status: http.StatusNoContent}, nil
	case err != nil:
		return nil, err
	}
	return &response{status: http.StatusNoContent, res: r}, nil
}

// maxConditionalDelete bounds how many resources one conditional delete may remove.
const maxConditionalDelete = 1000

func (s *Server) conditionalDelete(ctx context.Context, req *request, typ string) (*response, error) {
	if len(conditionParams(req.query)) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalid", "a conditional delete needs search parameters in the URL (DELETE %s?identifier=...)", typ)
	}
	return s.inTx(ctx, func(tx *fhirstore.Tx) (*response, error) {
		return s.conditionalDeleteTx(ctx, tx, typ, req.query)
	})
}

func (s *Server) conditionalDeleteTx(ctx context.Context, tx *fhirstore.Tx, typ string, q url.Values) (*response, error) {
	ids, fe := s.match(ctx, tx, typ, q, maxConditionalDelete+1)
	if fe != nil {
		return nil, fe
	}
	if len(ids) > maxConditionalDelete {
		return nil, errorf(http.StatusPreconditionFailed, "too-costly", "the conditional delete matches more than %d %s resources", maxConditionalDelete, typ)
	}
	var last *fhirstore.Resource
	for _, id := range ids {
		r, err := tx.Delete(ctx, typ, id, nil)
		if err != nil && !errors.Is(err, fhirstore.ErrGone) {
			return nil, err
		}
		last = r
	}
	resp := &response{status: http.StatusOK, body: info(fmt.Sprintf("deleted %d %s resource(s)", len(ids), typ))}
	if len(ids) == 1 {
		resp.res = last
	}
	return resp, nil
}
