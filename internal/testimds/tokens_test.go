package testimds

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"
)

// TestTokens: the IMDSv2 token protocol, over HTTP, with a clock the test
// moves.
func TestTokens(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tokens := &Tokens{now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	mux := http.NewServeMux()
	mux.Handle(TokenPath, tokens)
	mux.HandleFunc("/latest/meta-data/instance-id", func(w http.ResponseWriter, r *http.Request) {
		if tokens.Authorize(w, r) {
			io.WriteString(w, "i-0123456789abcdef0")
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	do := func(method, path string, header map[string]string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	token := func(ttl string) string {
		t.Helper()
		code, body, h := do(http.MethodPut, TokenPath, map[string]string{TokenTTLHeader: ttl})
		if code != http.StatusOK || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(body) || h.Get(TokenTTLHeader) != ttl {
			t.Fatalf("PUT token, TTL %s: %d %q, TTL header %q", ttl, code, body, h.Get(TokenTTLHeader))
		}
		return body
	}
	get := func(tok string) int {
		t.Helper()
		h := map[string]string{}
		if tok != "" {
			h[TokenHeader] = tok
		}
		code, _, _ := do(http.MethodGet, "/latest/meta-data/instance-id", h)
		return code
	}

	for _, c := range []struct {
		name, method string
		header       map[string]string
		want         int
	}{
		{"GET", http.MethodGet, map[string]string{TokenTTLHeader: "60"}, http.StatusMethodNotAllowed},
		{"no TTL", http.MethodPut, nil, http.StatusBadRequest},
		{"TTL 0", http.MethodPut, map[string]string{TokenTTLHeader: "0"}, http.StatusBadRequest},
		{"TTL over six hours", http.MethodPut, map[string]string{TokenTTLHeader: "21601"}, http.StatusBadRequest},
		{"TTL not a number", http.MethodPut, map[string]string{TokenTTLHeader: "1m"}, http.StatusBadRequest},
		{"through a proxy", http.MethodPut, map[string]string{TokenTTLHeader: "60", "X-Forwarded-For": "10.0.0.1"}, http.StatusForbidden},
	} {
		if code, body, _ := do(c.method, TokenPath, c.header); code != c.want {
			t.Errorf("token request %s: %d %q, want %d", c.name, code, body, c.want)
		}
	}

	short, long := token("60"), token("21600")
	if short == long {
		t.Errorf("two tokens alike: %s", short)
	}
	if code := get(""); code != http.StatusUnauthorized {
		t.Errorf("GET without a token: %d, want 401", code)
	}
	if code := get("0123456789abcdef0123456789abcdef"); code != http.StatusUnauthorized {
		t.Errorf("GET with a token never issued: %d, want 401", code)
	}
	if code := get(short); code != http.StatusOK {
		t.Errorf("GET with a fresh token: %d, want 200", code)
	}

	mu.Lock()
	now = now.Add(60 * time.Second)
	mu.Unlock()
	if code := get(short); code != http.StatusUnauthorized {
		t.Errorf("GET with a token at the end of its TTL: %d, want 401", code)
	}
	if code := get(long); code != http.StatusOK {
		t.Errorf("GET with a six-hour token after a minute: %d, want 200", code)
	}
	if !tokens.Valid(long) || tokens.Valid(short) || tokens.Valid("") {
		t.Errorf("Valid: long %v, expired %v, empty %v", tokens.Valid(long), tokens.Valid(short), tokens.Valid(""))
	}
}
