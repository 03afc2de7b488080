package fhirpath

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"strings"
	"sync"
)

// model.txt.gz is produced by internal/gen from the FHIR R4 StructureDefinitions.
//
//go:embed model.txt.gz
var modelData []byte

// typeKind tells what a FHIR type is.
type typeKind uint8

const (
	kindComplex typeKind = iota
	kindPrimitive
	kindResource
	kindBackbone
)

// typeDef describes one FHIR type (or backbone element) of the R4 model.
type typeDef struct {
	name  string
	base  *typeDef
	kind  typeKind
	elems map[string]*elemDef
}

// elemDef describes one element of a type.
type elemDef struct {
	name   string
	types  []string   // FHIR type names; several for a choice element
	keys   []string   // JSON keys of a choice element, parallel to types
	ukeys  []string   // "_" + key: where a primitive's id and extensions live, parallel to keys
	prim   []bool     // whether each type is primitive, parallel to types
	tdefs  []*typeDef // the model entries of types (nil for Resource, whose type comes from the data)
	array  bool
	choice bool
}

var (
	modelOnce  sync.Once
	modelTypes map[string]*typeDef
)

// fhirModel returns the embedded R4 model, loading it on first use.
func fhirModel() map[string]*typeDef {
	modelOnce.Do(loadModel)
	return modelTypes
}

func loadModel() {
	types := make(map[string]*typeDef, 700)
	bases := map[*typeDef]string{}
	zr, err := gzip.NewReader(bytes.NewReader(modelData))
	if err != nil {
		// The embedded file is part of the build; a broken one leaves an empty model.
		modelTypes = types
		return
	}
	sc := bufio.NewScanner(zr)
	var cur *typeDef
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if line[0] != '\t' {
			f := strings.Split(line, "\t")
			if len(f) < 3 {
				continue
			}
			cur = &typeDef{name: f[0], elems: map[string]*elemDef{}}
			switch f[2] {
			case "p":
				cur.kind = kindPrimitive
			case "r":
				cur.kind = kindResource
			case "b":
				cur.kind = kindBackbone
			}
			types[f[0]] = cur
			if f[1] != "" {
				bases[cur] = f[1]
			}
			continue
		}
		f := strings.Split(line[1:], "\t")
		if cur == nil || len(f) < 3 {
			continue
		}
		e := &elemDef{name: f[0], types: strings.Split(f[2], ","), array: strings.Contains(f[1], "a"), choice: strings.Contains(f[1], "c")}
		if e.choice {
			for _, t := range e.types {
				e.keys = append(e.keys, e.name+strings.ToUpper(t[:1])+t[1:])
			}
		}
		cur.elems[e.name] = e
	}
	for t, b := range bases {
		t.base = types[b]
	}
	for _, t := range types {
		for _, e := range t.elems {
			if !e.choice {
				e.keys = []string{e.name}
			}
			for i, k := range e.keys {
				e.ukeys = append(e.ukeys, "_"+k)
				pt := types[e.types[i]]
				e.prim = append(e.prim, pt != nil && pt.kind == kindPrimitive)
				if e.types[i] == "Resource" || e.types[i] == "DomainResource" {
					pt = nil
				}
				e.tdefs = append(e.tdefs, pt)
			}
		}
	}
	modelTypes = types
}

// lookupType returns the model entry for a FHIR type name, or nil.
func lookupType(name string) *typeDef {
	return fhirModel()[name]
}

// isResourceType reports whether name is an R4 resource type.
func isResourceType(name string) bool {
	t := lookupType(name)
	return t != nil && t.kind == kindResource
}

// element finds an element of t or of its base types.
func (t *typeDef) element(name string) *elemDef {
	for x := t; x != nil; x = x.base {
		if e := x.elems[name]; e != nil {
			return e
		}
	}
	return nil
}

// derivesFrom reports whether type name equals or specialises ancestor.
func derivesFrom(name, ancestor string) bool {
	if name == ancestor {
		return true
	}
	return typeDerivesFrom(lookupType(name), ancestor)
}

// typeDerivesFrom reports whether t or one of its bases is called ancestor.
func typeDerivesFrom(t *typeDef, ancestor string) bool {
	for t != nil {
		if t.name == ancestor {
			return true
		}
		t = t.base
	}
	return false
}

// ElementInfo describes an element of the R4 type model.
type ElementInfo struct {
	// Types are the element's FHIR type names: several for a choice element
	// (value[x]); a backbone element has the synthetic type "<Type>.<path>"
	// (e.g. "Observation.component").
	Types []string
	// Array reports whether the element repeats.
	Array bool
	// Choice reports whether the element is a choice (its JSON keys carry
	// the type: valueQuantity, valueString ...).
	Choice bool
}

// LookupElement returns the model's description of element name of type
// typeName (a resource, data type or backbone type name).
func LookupElement(typeName, name string) (ElementInfo, bool) {
	t := lookupType(typeName)
	if t == nil {
		return ElementInfo{}, false
	}
	e := t.element(name)
	if e == nil {
		return ElementInfo{}, false
	}
	return ElementInfo{Types: append([]string(nil), e.types...), Array: e.array, Choice: e.choice}, true
}

// IsResourceType reports whether name is an R4 resource type (including the
// abstract Resource and DomainResource).
func IsResourceType(name string) bool { return isResourceType(name) }

// IsSubtype reports whether FHIR type name is ancestor or derives from it
// (for example Age and Quantity, code and string, Patient and Resource).
func IsSubtype(name, ancestor string) bool { return derivesFrom(name, ancestor) }
