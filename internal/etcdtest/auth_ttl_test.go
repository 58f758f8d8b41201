package etcdtest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAuthTokenExpires checks that a token left unused for longer than the
// TTL is refused, while a fresh one is accepted. It asks etcd's JSON
// gateway, where the caller alone decides which token a request carries.
func TestAuthTokenExpires(t *testing.T) {
	const ttl = 1
	s := Start(t, WithAuthTokenTTL(ttl))
	cli := s.Client(t)
	EnableAuth(t, cli, "reader", "reader-pass", "/app/")
	resp, err := cli.Authenticate(ctxTimeout(t, 10*time.Second), "reader", "reader-pass")
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if body, ok := rangeWithToken(t, s.Endpoints()[0], resp.Token); !ok {
		t.Fatalf("range with a fresh token refused: %s", body)
	}
	// Every use renews a token, so wait once, with no use, for the TTL and
	// the second at which etcd drops expired tokens, plus a margin.
	time.Sleep(ttl*time.Second + 2*time.Second)
	body, ok := rangeWithToken(t, s.Endpoints()[0], resp.Token)
	if ok || !strings.Contains(body, "invalid auth token") {
		t.Errorf("range with a token unused for 2 s past its TTL: got %s, want invalid auth token", body)
	}
}

// rangeWithToken reads /app/x through the JSON gateway with token and
// returns the answer and whether it was a success.
func rangeWithToken(t *testing.T, endpoint, token string) (string, bool) {
	t.Helper()
	// "/app/x" in base64, as the gateway wants bytes.
	req, err := http.NewRequestWithContext(ctxTimeout(t, 10*time.Second), http.MethodPost, endpoint+"/v3/kv/range",
		strings.NewReader(`{"key":"L2FwcC94"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("range through the gateway: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read gateway answer: %v", err)
	}
	return string(body), resp.StatusCode == http.StatusOK
}
