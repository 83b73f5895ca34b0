package fleetsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/slicerburst/burst/internal/testimds"
)

const (
	// credentialsLife is how long the instance profile's credentials are
	// said to last when Config.Credentials has no expiry.
	credentialsLife = 6 * time.Hour
)

// metadata is one instance's metadata service: IMDSv2 only (a GET without a
// valid session token gets 401), answering the paths that the AWS SDK's
// credential chain and burst's worker read. Safe for concurrent use.
type metadata struct {
	instanceID   string
	instanceType string
	zone         string
	region       string
	imageID      string
	lifecycle    string // "spot" or "on-demand"
	role         string
	creds        aws.Credentials

	tokens testimds.Tokens

	mu sync.Mutex
	// interruptAt is when the spot interruption takes effect; zero until
	// one is announced. noticeAt is when it was announced.
	interruptAt time.Time
	noticeAt    time.Time
}

// interrupt announces a spot interruption that takes effect at at.
func (m *metadata) interrupt(now, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.noticeAt, m.interruptAt = now, at
}

func (m *metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == testimds.TokenPath {
		m.tokens.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// IMDSv2 required (HttpTokens=required): no token, no answer.
	if !m.tokens.Authorize(w, r) {
		return
	}
	body, ok := m.lookup(strings.TrimPrefix(r.URL.Path, "/latest/"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	if strings.HasPrefix(body, "{") {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/plain")
	}
	io.WriteString(w, body)
}

// lookup answers one metadata path (below /latest/).
func (m *metadata) lookup(path string) (string, bool) {
	credsPath := "meta-data/iam/security-credentials/"
	switch path {
	case "meta-data/instance-id":
		return m.instanceID, true
	case "meta-data/instance-type":
		return m.instanceType, true
	case "meta-data/ami-id":
		return m.imageID, m.imageID != ""
	case "meta-data/instance-life-cycle":
		return m.lifecycle, true
	case "meta-data/placement/availability-zone":
		return m.zone, true
	case "meta-data/placement/region":
		return m.region, true
	case "dynamic/instance-identity/document":
		doc, _ := json.Marshal(map[string]string{
			"instanceId":       m.instanceID,
			"instanceType":     m.instanceType,
			"availabilityZone": m.zone,
			"region":           m.region,
			"imageId":          m.imageID,
			"accountId":        "123456789012",
			"architecture":     "x86_64",
		})
		return string(doc), true
	case credsPath, strings.TrimSuffix(credsPath, "/"):
		return m.role, true
	case credsPath + m.role:
		return m.credentialsJSON(), true
	case "meta-data/spot/instance-action":
		m.mu.Lock()
		at := m.interruptAt
		m.mu.Unlock()
		if at.IsZero() {
			return "", false
		}
		doc, _ := json.Marshal(map[string]string{"action": "terminate", "time": at.UTC().Format(time.RFC3339)})
		return string(doc), true
	case "meta-data/events/recommendations/rebalance":
		m.mu.Lock()
		at := m.noticeAt
		m.mu.Unlock()
		if at.IsZero() {
			return "", false
		}
		doc, _ := json.Marshal(map[string]string{"noticeTime": at.UTC().Format(time.RFC3339)})
		return string(doc), true
	}
	return "", false
}

// credentialsJSON is the instance profile's credentials as IMDS gives them
// and the SDK's ec2rolecreds reads them.
func (m *metadata) credentialsJSON() string {
	exp := m.creds.Expires
	if !m.creds.CanExpire || exp.IsZero() {
		exp = time.Now().Add(credentialsLife)
	}
	doc, _ := json.Marshal(map[string]string{
		"Code":            "Success",
		"LastUpdated":     time.Now().UTC().Format(time.RFC3339),
		"Type":            "AWS-HMAC",
		"AccessKeyId":     m.creds.AccessKeyID,
		"SecretAccessKey": m.creds.SecretAccessKey,
		"Token":           m.creds.SessionToken,
		"Expiration":      exp.UTC().Format(time.RFC3339),
	})
	return string(doc)
}
