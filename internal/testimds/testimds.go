// Package testimds is an EC2 instance metadata service for tests, on
// 127.0.0.1: IMDSv2 only (a session token from PUT /latest/api/token,
// 401 without one), the instance's identity, spot interruption notices and
// rebalance recommendations set by the test, and faults (5xx, hangs) to
// inject. Tokens, the token protocol alone, is for other fake metadata
// services to build on.
package testimds

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is a failure the server answers metadata requests with.
type Fault int

const (
	// NoFault: the server answers normally.
	NoFault Fault = iota
	// Unavailable: every request, the token's too, gets a 503.
	Unavailable
	// Hang: every request waits a few seconds, then gets a 503: the
	// client's timeouts end it first.
	Hang
)

// Server is a running fake metadata service. Its methods are safe to call
// from several goroutines.
type Server struct {
	srv    *httptest.Server
	tokens Tokens

	mu           sync.Mutex
	instanceID   string
	instanceType string
	zone         string
	spot         string // instance-action body; "" none
	rebalance    string // rebalance body; "" none
	fault        Fault
	counts       map[string]int
	unauthorized int
	failed       int
}

// Start runs a server for the test, closed when it ends (see New).
func Start(t testing.TB, id string) *Server {
	t.Helper()
	s := New(id)
	t.Cleanup(s.Close)
	return s
}

// New runs a server for instance id (e.g. "i-0123456789abcdef0"), of type
// c7i.large in us-east-1a, until Close.
func New(id string) *Server {
	s := &Server{
		instanceID: id, instanceType: "c7i.large", zone: "us-east-1a",
		counts: map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Endpoint is the server's address, for AWS_EC2_METADATA_SERVICE_ENDPOINT.
func (s *Server) Endpoint() string { return s.srv.URL }

// Spot posts a spot interruption notice: action ("terminate", "stop" or
// "hibernate") at time at.
func (s *Server) Spot(action string, at time.Time) {
	body, _ := json.Marshal(map[string]string{"action": action, "time": at.UTC().Format(time.RFC3339)})
	s.mu.Lock()
	s.spot = string(body)
	s.mu.Unlock()
}

// Rebalance posts a rebalance recommendation made at time at.
func (s *Server) Rebalance(at time.Time) {
	body, _ := json.Marshal(map[string]string{"noticeTime": at.UTC().Format(time.RFC3339)})
	s.mu.Lock()
	s.rebalance = string(body)
	s.mu.Unlock()
}

// SetRaw sets the body of a notice path ("spot/instance-action" or
// "events/recommendations/rebalance") as is; "" removes the notice.
func (s *Server) SetRaw(path, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch path {
	case "spot/instance-action":
		s.spot = body
	case "events/recommendations/rebalance":
		s.rebalance = body
	}
}

// Clear withdraws every notice.
func (s *Server) Clear() {
	s.mu.Lock()
	s.spot, s.rebalance = "", ""
	s.mu.Unlock()
}

// SetFault makes the server fail every request from now on (NoFault
// heals it). Tokens issued before stay valid.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Count returns how many requests for a metadata path (e.g.
// "spot/instance-action") were answered with a valid token.
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// Unauthorized counts metadata requests refused for want of a valid token.
func (s *Server) Unauthorized() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unauthorized
}

// Failed counts requests answered with an injected fault.
func (s *Server) Failed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	fault := s.fault
	if fault != NoFault {
		s.failed++
	}
	s.mu.Unlock()
	switch fault {
	case Hang:
		select {
		case <-r.Context().Done():
			return
		case <-time.After(3 * time.Second):
		}
		fallthrough
	case Unavailable:
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}

	if r.URL.Path == TokenPath {
		s.tokens.ServeHTTP(w, r)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/latest/meta-data/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !s.tokens.Authorize(w, r) {
		s.mu.Lock()
		s.unauthorized++
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[path]++
	var body string
	switch path {
	case "instance-id":
		body = s.instanceID
	case "instance-type":
		body = s.instanceType
	case "placement/availability-zone":
		body = s.zone
	case "spot/instance-action":
		body = s.spot
	case "events/recommendations/rebalance":
		body = s.rebalance
	}
	if body == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, body)
}
