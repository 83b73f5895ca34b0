package testimds

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

const (
	// TokenPath is where IMDSv2 issues session tokens, to a PUT.
	TokenPath = "/latest/api/token"
	// TokenHeader carries a session token on a metadata request.
	TokenHeader = "X-Aws-Ec2-Metadata-Token"
	// TokenTTLHeader carries the life in seconds asked for a token, and
	// granted.
	TokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	// maxTokenTTL is IMDS's limit on a token's life, six hours.
	maxTokenTTL = 21600
)

// Tokens is the session-token protocol of IMDSv2, for a fake metadata
// service to build on: it issues tokens and checks them. The zero value is
// ready to use; safe for concurrent use. Tokens never leave it: one Tokens
// is one metadata service.
type Tokens struct {
	mu     sync.Mutex
	issued map[string]time.Time // token -> expiry
	now    func() time.Time     // nil: time.Now
}

func (t *Tokens) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// ServeHTTP issues a session token, as IMDSv2 does at TokenPath: PUT only
// (else 405); a request that went through a proxy (X-Forwarded-For) gets
// 403; the TokenTTLHeader must ask for 1 to 21600 seconds (else 400). The
// answer is the token, as text, with the TTL granted in TokenTTLHeader.
func (t *Tokens) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(TokenTTLHeader))
	if err != nil || ttl < 1 || ttl > maxTokenTTL {
		http.Error(w, "bad request: token TTL", http.StatusBadRequest)
		return
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	token := hex.EncodeToString(b[:])
	t.mu.Lock()
	if t.issued == nil {
		t.issued = map[string]time.Time{}
	}
	t.issued[token] = t.clock().Add(time.Duration(ttl) * time.Second)
	t.mu.Unlock()
	w.Header().Set(TokenTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, token)
}

// Valid reports whether token was issued here and has not expired.
func (t *Tokens) Valid(token string) bool {
	if token == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	exp, ok := t.issued[token]
	return ok && t.clock().Before(exp)
}

// Authorize reports whether r carries a valid session token in
// TokenHeader. When it does not, it answers r with 401, as IMDS does when
// tokens are required, and the caller must write nothing more.
func (t *Tokens) Authorize(w http.ResponseWriter, r *http.Request) bool {
	if t.Valid(r.Header.Get(TokenHeader)) {
		return true
	}
	http.Error(w, "unauthorized", http.StatusUnauthorized)
	return false
}
