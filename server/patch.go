package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil/fhirpath"
	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirvalidate"
)

func (s *Server) patch(ctx context.Context, req *request, typ, id string) (*response, error) {
	ifMatch, fe := ifMatchVersion(req)
	if fe != nil {
		return nil, fe
	}
	return s.inTx(ctx, func(tx *fhirstore.Tx) (*response, error) {
		return s.patchTx(ctx, tx, typ, id, req.get("Content-Type"), req.body, ifMatch)
	})
}

func (s *Server) conditionalPatch(ctx context.Context, req *request, typ string) (*response, error) {
	if len(conditionParams(req.query)) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalid", "a conditional patch needs search parameters in the URL")
	}
	ifMatch, fe := ifMatchVersion(req)
	if fe != nil {
		return nil, fe
	}
	return s.inTx(ctx, func(tx *fhirstore.Tx) (*response, error) {
		ids, fe := s.match(ctx, tx, typ, req.query, 2)
		if fe != nil {
			return nil, fe
		}
		switch len(ids) {
		case 0:
			return nil, errorf(http.StatusNotFound, "not-found", "the conditional patch matches no %s", typ)
		case 1:
			return s.patchTx(ctx, tx, typ, ids[0], req.get("Content-Type"), req.body, ifMatch)
		}
		return nil, errorf(http.StatusPreconditionFailed, "multiple-matches", "the conditional patch matches more than one %s", typ)
	})
}

// patchTx applies a JSON Patch (application/json-patch+json) or a FHIRPath Patch (a
// Parameters resource as application/fhir+json) to the current version of typ/id. A
// malformed patch is a 400; a patch whose result is not a valid resource is a 422.
func (s *Server) patchTx(ctx context.Context, tx *fhirstore.Tx, typ, id, contentType string, body []byte, ifMatch int64) (*response, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	var apply func(doc map[string]any) (map[string]any, *Error)
	switch mt {
	case "application/json-patch+json":
		var ops []jsonPatchOp
		if err := json.Unmarshal(body, &ops); err != nil {
			return nil, errorf(http.StatusBadRequest, "structure", "malformed JSON Patch: %v", err)
		}
		apply = func(doc map[string]any) (map[string]any, *Error) { return applyJSONPatch(doc, ops) }
	case "application/fhir+json", "application/json", "application/json+fhir", "":
		params, err := decodeJSON(body)
		if err != nil || params["resourceType"] != "Parameters" {
			return nil, errorf(http.StatusBadRequest, "structure", "a FHIRPath Patch must be a Parameters resource (or send a JSON Patch as application/json-patch+json)")
		}
		apply = func(doc map[string]any) (map[string]any, *Error) {
			out, err := fhirpath.ApplyPatch(doc, params)
			if err != nil {
				status := http.StatusUnprocessableEntity
				if errors.Is(err, fhirpath.ErrPatchInvalid) {
					status = http.StatusBadRequest
				}
				fe := errorf(status, "processing", "FHIRPath Patch failed: %v", err)
				var pe *fhirpath.PatchError
				if errors.As(err, &pe) && pe.Path != "" {
					fe.withExpr(pe.Path)
				}
				return nil, fe
			}
			m, ok := out.(map[string]any)
			if !ok {
				return nil, errorf(http.StatusUnprocessableEntity, "processing", "FHIRPath Patch did not produce a resource")
			}
			return m, nil
		}
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "patch format %q is not supported: use application/json-patch+json or a FHIRPath Patch Parameters as application/fhir+json", mt)
	}
	return s.updateTxWith(ctx, tx, typ, id, ifMatch, "PATCH", func(cur *fhirstore.Resource) (map[string]any, error) {
		doc, err := decodeJSON(cur.Body)
		if err != nil {
			return nil, fmt.Errorf("stored %s/%s is not JSON: %w", typ, id, err)
		}
		out, fe := apply(doc)
		if fe != nil {
			return nil, fe
		}
		if out["resourceType"] != typ || out["id"] != id {
			return nil, errorf(http.StatusUnprocessableEntity, "processing", "a patch may not change resourceType or id")
		}
		b, _ := json.Marshal(out)
		_, issues, verr := s.validator.Validate(b)
		if verr != nil {
			return nil, verr
		}
		if fhirvalidate.HasErrors(issues) {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Issues: issues}
		}
		return decodeJSON(b)
	})
}

// updateTxWith is updateTx for updaters that derive the new content from the current one;
// the resource must exist.
func (s *Server) updateTxWith(ctx context.Context, tx *fhirstore.Tx, typ, id string, ifMatch int64, method string, fn fhirstore.Updater) (*response, error) {
	r, _, err := tx.Update(ctx, typ, id, method, func(cur *fhirstore.Resource) (map[string]any, error) {
		if cur == nil {
			if gone, _ := tx.Read(ctx, typ, id); gone != nil {
				return nil, errorf(http.StatusGone, "deleted", "%s/%s was deleted", typ, id)
			}
			return nil, errorf(http.StatusNotFound, "not-found", "%s/%s is not known", typ, id)
		}
		if ifMatch > 0 && cur.Version != ifMatch {
			return nil, errorf(http.StatusPreconditionFailed, "conflict", "If-Match W/\"%d\" but the current version of %s/%s is %d", ifMatch, typ, id, cur.Version)
		}
		return fn(cur)
	})
	if err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, res: r, body: r.Body, outcome: info(fmt.Sprintf("patched %s/%s to version %d", typ, id, r.Version))}, nil
}

// jsonPatchOp is one RFC 6902 operation.
type jsonPatchOp struct {
	Op    string           `json:"op"`
	Path  *string          `json:"path"`
	From  *string          `json:"from"`
	Value *json.RawMessage `json:"value"`
}

// applyJSONPatch applies RFC 6902 operations to doc; all or nothing.
func applyJSONPatch(doc map[string]any, ops []jsonPatchOp) (map[string]any, *Error) {
	var root any = doc
	for i, op := range ops {
		bad := func(format string, args ...any) *Error {
			return errorf(http.StatusUnprocessableEntity, "processing", "JSON Patch operation %d (%s): %s", i, op.Op, fmt.Sprintf(format, args...))
		}
		if op.Path == nil {
			return nil, errorf(http.StatusBadRequest, "structure", "JSON Patch operation %d has no path", i)
		}
		path, err := parsePointer(*op.Path)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "structure", "JSON Patch operation %d: %v", i, err)
		}
		value := func() (any, *Error) {
			if op.Value == nil {
				return nil, errorf(http.StatusBadRequest, "structure", "JSON Patch operation %d (%s) has no value", i, op.Op)
			}
			v, err := decodeAny(*op.Value)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "structure", "JSON Patch operation %d: bad value: %v", i, err)
			}
			return v, nil
		}
		from := func() ([]string, *Error) {
			if op.From == nil {
				return nil, errorf(http.StatusBadRequest, "structure", "JSON Patch operation %d (%s) has no from", i, op.Op)
			}
			p, err := parsePointer(*op.From)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "structure", "JSON Patch operation %d: %v", i, err)
			}
			return p, nil
		}
		switch op.Op {
		case "add":
			v, fe := value()
			if fe != nil {
				return nil, fe
			}
			if root, err = ptrAdd(root, path, v); err != nil {
				return nil, bad("%v", err)
			}
		case "remove":
			if root, _, err = ptrRemove(root, path); err != nil {
				return nil, bad("%v", err)
			}
		case "replace":
			v, fe := value()
			if fe != nil {
				return nil, fe
			}
			if root, _, err = ptrRemove(root, path); err != nil {
				return nil, bad("%v", err)
			}
			if root, err = ptrAdd(root, path, v); err != nil {
				return nil, bad("%v", err)
			}
		case "move", "copy":
			fp, fe := from()
			if fe != nil {
				return nil, fe
			}
			var v any
			if op.Op == "move" {
				if strings.HasPrefix(*op.Path+"/", *op.From+"/") && *op.Path != *op.From {
					return nil, bad("cannot move a value into itself")
				}
				root, v, err = ptrRemove(root, fp)
			} else {
				v, err = ptrGet(root, fp)
				v = deepCopy(v)
			}
			if err != nil {
				return nil, bad("%v", err)
			}
			if root, err = ptrAdd(root, path, v); err != nil {
				return nil, bad("%v", err)
			}
		case "test":
			v, fe := value()
			if fe != nil {
				return nil, fe
			}
			got, err := ptrGet(root, path)
			if err != nil {
				return nil, bad("%v", err)
			}
			if !jsonEqual(got, v) {
				return nil, errorf(http.StatusUnprocessableEntity, "processing", "JSON Patch test at %s failed", *op.Path)
			}
		default:
			return nil, errorf(http.StatusBadRequest, "structure", "JSON Patch operation %d: unknown op %q", i, op.Op)
		}
	}
	m, ok := root.(map[string]any)
	if !ok {
		return nil, errorf(http.StatusUnprocessableEntity, "processing", "the patched document is not a JSON object")
	}
	return m, nil
}

func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("path %q is not a JSON Pointer", p)
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

var errNoPath = errors.New("path does not exist")

func ptrGet(node any, path []string) (any, error) {
	for _, key := range path {
		switch n := node.(type) {
		case map[string]any:
			v, ok := n[key]
			if !ok {
				return nil, fmt.Errorf("%w: no member %q", errNoPath, key)
			}
			node = v
		case []any:
			i, err := arrayIndex(key, len(n), false)
			if err != nil {
				return nil, err
			}
			node = n[i]
		default:
			return nil, fmt.Errorf("%w: %q is below a primitive", errNoPath, key)
		}
	}
	return node, nil
}

func arrayIndex(key string, n int, forAdd bool) (int, error) {
	if key == "-" && forAdd {
		return n, nil
	}
	i, err := strconv.Atoi(key)
	if err != nil || i < 0 || (key != "0" && strings.HasPrefix(key, "0")) {
		return 0, fmt.Errorf("%w: bad array index %q", errNoPath, key)
	}
	max := n - 1
	if forAdd {
		max = n
	}
	if i > max {
		return 0, fmt.Errorf("%w: array index %d out of range", errNoPath, i)
	}
	return i, nil
}

// ptrAdd adds v at path and returns the (possibly new) root.
func ptrAdd(root any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	parent, err := ptrGet(root, path[:len(path)-1])
	if err != nil {
		return nil, err
	}
	key := path[len(path)-1]
	switch p := parent.(type) {
	case map[string]any:
		p[key] = v
		return root, nil
	case []any:
		i, err := arrayIndex(key, len(p), true)
		if err != nil {
			return nil, err
		}
		np := append(p[:i:i], append([]any{v}, p[i:]...)...)
		return setAt(root, path[:len(path)-1], np)
	}
	return nil, fmt.Errorf("%w: cannot add below a primitive", errNoPath)
}

// ptrRemove removes the value at path, returning the new root and the removed value.
func ptrRemove(root any, path []string) (any, any, error) {
	if len(path) == 0 {
		return nil, nil, fmt.Errorf("cannot remove the whole document")
	}
	parent, err := ptrGet(root, path[:len(path)-1])
	if err != nil {
		return nil, nil, err
	}
	key := path[len(path)-1]
	switch p := parent.(type) {
	case map[string]any:
		v, ok := p[key]
		if !ok {
			return nil, nil, fmt.Errorf("%w: no member %q", errNoPath, key)
		}
		delete(p, key)
		return root, v, nil
	case []any:
		i, err := arrayIndex(key, len(p), false)
		if err != nil {
			return nil, nil, err
		}
		v := p[i]
		np := append(append([]any{}, p[:i]...), p[i+1:]...)
		r, err := setAt(root, path[:len(path)-1], np)
		return r, v, err
	}
	return nil, nil, fmt.Errorf("%w: cannot remove below a primitive", errNoPath)
}

// setAt replaces the value at path (used when an array is reallocated).
func setAt(root any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	parent, err := ptrGet(root, path[:len(path)-1])
	if err != nil {
		return nil, err
	}
	key := path[len(path)-1]
	switch p := parent.(type) {
	case map[string]any:
		p[key] = v
	case []any:
		i, err := arrayIndex(key, len(p), false)
		if err != nil {
			return nil, err
		}
		p[i] = v
	}
	return root, nil
}

func decodeAny(b []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func deepCopy(v any) any {
	b, _ := json.Marshal(v)
	c, _ := decodeAny(b)
	return c
}

// jsonEqual compares JSON values, numbers by value.
func jsonEqual(a, b any) bool {
	na, aok := a.(json.Number)
	nb, bok := b.(json.Number)
	if aok && bok {
		fa, _ := na.Float64()
		fb, _ := nb.Float64()
		return fa == fb
	}
	return reflect.DeepEqual(a, b)
}
