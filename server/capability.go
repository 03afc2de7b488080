package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"time"
)

// typeInteractions are the type- and instance-level interactions served for every resource
// type (dispatch implements each; capability_test exercises each).
var typeInteractions = []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"}

// systemInteractions are the whole-system interactions served.
var systemInteractions = []string{"transaction", "batch", "history-system", "search-system"}

// operations are the FHIR operations served, with their official definitions; types
// limits an operation to some resource types (nil: all).
var operations = []struct {
	name, definition string
	types            []string
}{
	{"validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate", nil},
	{"lastn", "http://hl7.org/fhir/OperationDefinition/Observation-lastn", []string{"Observation"}},
	{"everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything", []string{"Patient"}},
	{"ingest", "http://vigil.health/fhir/OperationDefinition/Device-ingest", []string{"Device"}},
	{"reindex", "http://vigil.health/fhir/OperationDefinition/reindex", nil},
}

// capabilities serves GET /metadata: a CapabilityStatement describing what this server
// registers, so that it claims nothing it does not do. mode=terse omits per-type details.
func (s *Server) capabilities(req *request) (*response, error) {
	mode := req.query.Get("mode")
	if mode != "" && mode != "full" && mode != "normative" && mode != "terse" {
		return nil, errorf(http.StatusBadRequest, "invalid", "mode must be full, normative or terse").withExpr("mode")
	}
	body, _ := json.Marshal(s.capabilityStatement(mode == "terse"))
	return &response{status: http.StatusOK, body: body}, nil
}

func (s *Server) capabilityStatement(terse bool) map[string]any {
	types := append([]string(nil), resourceTypes...)
	sort.Strings(types)
	// _revinclude: every reference parameter of any type that may point to t.
	revIncludes := map[string][]any{}
	for _, src := range types {
		for _, sp := range s.store.SearchParams(src) {
			if sp.Type != "reference" {
				continue
			}
			for _, target := range sp.Targets {
				revIncludes[target] = append(revIncludes[target], src+":"+sp.Name)
			}
		}
	}
	var resources []any
	for _, t := range types {
		r := map[string]any{"type": t}
		if !terse {
			var inter []any
			for _, code := range typeInteractions {
				inter = append(inter, map[string]any{"code": code})
			}
			var sps []any
			includes := []any{"*"}
			for _, sp := range s.store.SearchParams(t) {
				p := map[string]any{"name": sp.Name, "type": sp.Type}
				if sp.URL != "" {
					p["definition"] = sp.URL
				}
				if sp.Doc != "" {
					p["documentation"] = sp.Doc
				}
				sps = append(sps, p)
				if sp.Type == "reference" {
					includes = append(includes, t+":"+sp.Name)
				}
			}
			var ops []any
			for _, op := range operations {
				if op.types == nil || slices.Contains(op.types, t) {
					ops = append(ops, map[string]any{"name": op.name, "definition": op.definition})
				}
			}
			r["searchInclude"] = includes
			if rev := revIncludes[t]; len(rev) > 0 {
				r["searchRevInclude"] = rev
			}
			r["interaction"] = inter
			r["versioning"] = "versioned-update"
			r["readHistory"] = true
			r["updateCreate"] = true
			r["conditionalCreate"] = true
			r["conditionalRead"] = "full-support"
			r["conditionalUpdate"] = true
			r["conditionalDelete"] = "multiple"
			r["referencePolicy"] = []any{"literal", "logical"}
			r["searchParam"] = sps
			r["operation"] = ops
		}
		resources = append(resources, r)
	}
	var sys []any
	for _, code := range systemInteractions {
		sys = append(sys, map[string]any{"code": code})
	}
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         time.Now().UTC().Format("2006-01-02"),
		"publisher":    "Vigil",
		"kind":         "instance",
		"software":     map[string]any{"name": "Vigil", "version": Version},
		"implementation": map[string]any{
			"description": "Vigil FHIR R4 server for connected medical devices",
			"url":         s.FHIRBase(),
		},
		"fhirVersion": "4.0.1",
		"format":      []any{"application/fhir+json", "json"},
		"patchFormat": []any{"application/json-patch+json", "application/fhir+json"},
		"rest": []any{map[string]any{
			"mode":        "server",
			"resource":    resources,
			"interaction": sys,
		}},
	}
}
