package render

import (
	"context"
	"fmt"
	"testing"

	"github.com/etcdconfd/confd/pkg/kv"
)

const benchKeys = 100000

// benchStore holds benchKeys keys under /app/servers and benchKeys keys
// under /svc/<service>/<instance> (1,000 services of 100 instances).
func benchStore(b *testing.B) *kv.View {
	b.Helper()
	bl := kv.NewBuilder()
	for i := range benchKeys {
		bl.Put(fmt.Sprintf("/app/servers/srv-%06d", i), fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255))
	}
	for s := range 1000 {
		for i := range benchKeys / 1000 {
			bl.Put(fmt.Sprintf("/svc/s%04d/%03d", s, i), fmt.Sprintf("10.1.%d.%d:80", s&255, i))
		}
	}
	return bl.Build(1).All()
}

func benchExecute(b *testing.B, text string, minLen int) {
	s := benchStore(b)
	tmpl, err := Parse("bench.tmpl", text, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out, err := tmpl.Execute(ctx, s)
		if err != nil {
			b.Fatal(err)
		}
		if len(out) < minLen {
			b.Fatalf("output is %d bytes, want at least %d", len(out), minLen)
		}
	}
}

func BenchmarkExecuteGets100k(b *testing.B) {
	benchExecute(b, `{{range gets "/app/servers/*"}}server {{base .Key}} {{.Value}} check
{{end}}`, benchKeys*30)
}

func BenchmarkExecuteLsGetv100k(b *testing.B) {
	benchExecute(b, `{{range ls "/app/servers"}}{{getv (printf "/app/servers/%s" .)}}
{{end}}`, benchKeys*10)
}

func BenchmarkExecuteLsdirGets100k(b *testing.B) {
	benchExecute(b, `{{range $s := lsdir "/svc"}}backend {{$s}}
{{range gets (printf "/svc/%s/*" $s)}}  server {{base .Key}} {{.Value}}
{{end}}{{end}}`, benchKeys*20)
}

// BenchmarkExecuteSmall measures the fixed cost of one Execute.
func BenchmarkExecuteSmall(b *testing.B) {
	s := storeOf(seedKeys())
	tmpl, err := Parse("small.tmpl", `{{getv "/app/servers/cocky_morse"}}`, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Execute(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecuteGets100kBuffer is BenchmarkExecuteGets100k as a daemon
// renders after each change: into the memory of the previous output.
func BenchmarkExecuteGets100kBuffer(b *testing.B) {
	s := benchStore(b)
	tmpl, err := Parse("bench.tmpl", `{{range gets "/app/servers/*"}}server {{base .Key}} {{.Value}} check
{{end}}`, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var mem Buffer
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		chunks, err := tmpl.ExecuteChunks(ctx, s, &mem)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, c := range chunks {
			n += len(c)
		}
		if n < benchKeys*30 {
			b.Fatalf("output is %d bytes, want at least %d", n, benchKeys*30)
		}
	}
}
