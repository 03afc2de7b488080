package fhirvalidate

import (
	"strings"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// containedResource describes R4 ContainedResource, the oneof over all resource types.
var containedResource = (&rpb.ContainedResource{}).ProtoReflect().Descriptor()

// resourceDescs maps each R4 resource type name ("Observation") to its message.
var resourceDescs = func() map[string]protoreflect.MessageDescriptor {
	m := make(map[string]protoreflect.MessageDescriptor, 150)
	fields := containedResource.Oneofs().ByName("oneof_resource").Fields()
	for i := range fields.Len() {
		md := fields.Get(i).Message()
		m[string(md.Name())] = md
	}
	return m
}()

// resourceNames holds every R4 resource type name, in the two spellings the library uses
// in paths: "Observation" (parse errors) and "observation" (validation issues).
var resourceNames = func() map[string]bool {
	names := make(map[string]bool, 2*len(resourceDescs))
	fields := containedResource.Oneofs().ByName("oneof_resource").Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		names[string(f.Message().Name())] = true
		names[f.JSONName()] = true
	}
	return names
}()

// isResourceType reports whether name is an R4 resource type.
func isResourceType(name string) bool {
	return name != "" && name[0] >= 'A' && name[0] <= 'Z' && resourceDescs[name] != nil
}

// isChoice reports whether md is the message the library uses for a choice element.
func isChoice(md protoreflect.MessageDescriptor) bool {
	return md != nil && proto.HasExtension(md.Options(), apb.E_IsChoiceType)
}

// jsonChoicePath rewrites a path from the library's validation step, which follows the
// protobuf structure, to the JSON property names that parse errors and our walk use:
// a choice element appears as "<name>.<type>" ("MedicationRequest.medication.reference")
// and becomes "<name><Type>" ("MedicationRequest.medicationReference"); the resource type
// segment the library inserts after a nested resource ("...resource.observation.status")
// is dropped. A path that does not match the descriptors is returned unchanged.
func jsonChoicePath(p string) string {
	segs := strings.Split(p, ".")
	md := resourceDescs[segs[0]]
	if md == nil || len(segs) == 1 {
		return p
	}
	out := make([]string, 1, len(segs))
	out[0] = segs[0]
	for i := 1; i < len(segs); i++ {
		seg := segs[i]
		if md == nil {
			out = append(out, seg)
			continue
		}
		name, index := splitIndex(seg)
		f := md.Fields().ByJSONName(name)
		if f == nil || f.Message() == nil {
			return p
		}
		next := f.Message()
		out = append(out, seg)
		md = next
		if i+1 >= len(segs) {
			break
		}
		switch {
		case next.FullName() == containedResource.FullName():
			member := next.Fields().ByJSONName(segs[i+1])
			if member == nil || member.Message() == nil {
				return p
			}
			md = member.Message()
			i++ // the inserted resource type
		case isChoice(next) && index == "":
			mname, mindex := splitIndex(segs[i+1])
			member := next.Fields().ByJSONName(mname)
			if member == nil || mname == "" {
				return p
			}
			out[len(out)-1] = name + strings.ToUpper(mname[:1]) + mname[1:] + mindex
			md = member.Message()
			i++
		}
	}
	return strings.Join(out, ".")
}

// splitIndex splits "component[0]" into "component" and "[0]".
func splitIndex(seg string) (name, index string) {
	if i := strings.IndexByte(seg, '['); i >= 0 {
		return seg[:i], seg[i:]
	}
	return seg, ""
}

// normalizePath turns a library path into a FHIRPath expression: the library inserts the
// resource type after each nested resource ("Bundle.entry[0].resource.Observation.status",
// "...resource.observation.status"), which FHIRPath does not have. A non-empty prefix
// replaces the first segment (the resource type of a resource validated on its own).
func normalizePath(p, prefix string) string {
	if p == "" {
		return prefix
	}
	segs := strings.Split(p, ".")
	out := segs[:1]
	if prefix != "" {
		out[0] = prefix
	}
	for i := 1; i < len(segs); i++ {
		prev := segs[i-1]
		if resourceNames[segs[i]] && (prev == "resource" || prev == "outcome" ||
			strings.HasPrefix(prev, "contained[") || prev == "contained") {
			continue
		}
		seg := segs[i]
		if len(seg) > 1 && seg[0] == '_' {
			seg = seg[1:] // "_status" in JSON is "status" in FHIRPath
		}
		out = append(out, seg)
	}
	return strings.Join(out, ".")
}
