package server

import (
	"context"
	"net/http"
)

// search serves type-level search. (Replaced by the search engine of fhirstore.)
func (s *Server) search(ctx context.Context, req *request, typ string) (*response, error) {
	return nil, errorf(http.StatusBadRequest, "not-supported", "search is not available")
}

// searchSystem serves GET [base]?_type=...
func (s *Server) searchSystem(ctx context.Context, req *request) (*response, error) {
	return nil, errorf(http.StatusBadRequest, "not-supported", "search is not available")
}
