package server

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"
)

// typeInteractions are the type- and instance-level interactions served for every resource
// type (dispatch implements each; capability_test exercises each).
var typeInteractions = []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"}

// systemInteractions are the whole-system interactions served.
var systemInteractions = []string{"transaction", "batch", "history-system"}

// operations are the FHIR operations served, with their official definitions.
var operations = []struct {
	name, definition string
	typeLevel        bool
}{
	{"validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate", true},
}

// conditionSearchParams are the search parameters the server answers today (conditions and
// type-level search); each has its official definition.
var conditionSearchParams = []struct{ name, definition, typ, doc string }{
	{"_id", "http://hl7.org/fhir/SearchParameter/Resource-id", "token", "Logical id of the resource"},
	{"identifier", "", "token", "Business identifier (the resource's top-level identifier element)"},
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
	var resources []any
	for _, t := range types {
		r := map[string]any{"type": t}
		if !terse {
			var inter []any
			for _, code := range typeInteractions {
				inter = append(inter, map[string]any{"code": code})
			}
			var sps []any
			for _, sp := range conditionSearchParams {
				p := map[string]any{"name": sp.name, "type": sp.typ, "documentation": sp.doc}
				if sp.definition != "" {
					p["definition"] = sp.definition
				}
				sps = append(sps, p)
			}
			var ops []any
			for _, op := range operations {
				if op.typeLevel {
					ops = append(ops, map[string]any{"name": op.name, "definition": op.definition})
				}
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
