package ljson

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

type record struct {
	ID      string            `json:"id"`
	Pid     int               `json:"pid"`
	Start   uint64            `json:"start,omitempty"`
	Created time.Time         `json:"created"`
	When    *time.Time        `json:"when,omitempty"`
	Map     map[string]string `json:"map,omitempty"`
	Ints    map[string]int    `json:"ints"`
	BPF     []byte            `json:"bpf,omitempty"`
	Spec    *specs.Spec       `json:"config"`
	Skip    string            `json:"-"`
	Dash    string            `json:"-,"`
	Plain   bool
	private int
}

type withAny struct {
	A any `json:"a"`
}

type withFloat struct {
	F float64 `json:"f"`
}

type withString struct {
	N int `json:"n,string"`
}

type Embedded struct{ X int }

type withEmbedded struct {
	Embedded
	Y int
}

var docs = []string{
	`{}`, ` {} `, `null`, `{"ociVersion":"1.0.0"}`,
	`{"OCIVERSION":"x","ociversion":"y"}`,
	`{"process":{"args":["a","b"],"env":[],"user":{"uid":1,"gid":2,"additionalGids":[3,4]}}}`,
	`{"process":{"args":null}}`,
	`{"process":{"args":["x"],"args":["y","z"]}}`,
	`{"process":{"user":{"uid":-1}}}`,
	`{"process":{"user":{"uid":4294967296}}}`,
	`{"process":{"user":{"uid":1.0}}}`,
	`{"process":{"user":{"uid":1e3}}}`,
	`{"process":{"user":{"uid":01}}}`,
	`{"process":{"user":{"uid":"1"}}}`,
	`{"process":{"oomScoreAdj":-1000}}`,
	`{"annotations":{"a":"b","c":"d\u00e9\n\t\"\\\/","a":"e"}}`,
	`{"annotations":{"k\u0041":"\ud83d\ude00"}}`,
	`{"annotations":{"k":"\ud83d"}}`,
	`{"annotations":{"k":"\xff"}}`,
	`{"annotations":{"k":"é ü 日本"}}`,
	`{"hostname":"a<b>&c\u2028"}`,
	`{"hostname":"tab	inside"}`,
	`{"hostname":"x",}`, `{"hostname" "x"}`, `{"hostname":"x"`, `{"hostname":"x"} x`, `[`, ``, `{"a":[1,2,{"b":null,"c":[true,false]}],"hostname":"h"}`,
	`{"unknown":{"deep":[1,-2.5e+3,"s",null,true]},"hostname":"h"}`,
	`{"unknown":[1,]}`, `{"unknown":-}`, `{"unknown":1.}`, `{"unknown":tru}`,
	`{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/x"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}`,
	`{"linux":{"resources":{"memory":{"limit":1048576,"swappiness":10},"cpu":{"shares":1024,"quota":-1}}}}`,
	`{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}}}`,
	`{"windows":{"credentialSpec":{"a":1}}}`,
	`{"mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid"]}]}`,
	`{"process":{"capabilities":{"bounding":["CAP_KILL"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}]}}`,
	`{"hooks":{"prestart":[{"path":"/bin/true","args":["true"],"timeout":5}]}}`,
	`{"process":null,"root":{"path":"rootfs","readonly":true}}`,
	`{"hostname":null}`,
	`{"process":{"terminal":null}}`,
	`[]`, `"x"`, `1`,
}

func checkDecode[T any](t *testing.T, doc string) {
	t.Helper()
	var want, got T
	werr := json.Unmarshal([]byte(doc), &want)
	gerr := Unmarshal([]byte(doc), &got)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Errorf("%T %s: error %v, encoding/json says %v", got, doc, gerr, werr)
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%T %s: decoded %+v, encoding/json %+v", got, doc, got, want)
	}
	if werr != nil {
		return
	}
	checkEncode(t, &got)
	checkEncode(t, got)
}

func checkEncode(t *testing.T, v any) {
	t.Helper()
	want, werr := json.Marshal(v)
	got, gerr := Marshal(v)
	if (werr == nil) != (gerr == nil) || !bytes.Equal(want, got) {
		t.Errorf("%T: encoded %s (%v), encoding/json %s (%v)", v, got, gerr, want, werr)
	}
}

func TestDecodeLikeEncodingJSON(t *testing.T) {
	for _, doc := range docs {
		checkDecode[specs.Spec](t, doc)
		checkDecode[*specs.Spec](t, doc)
		checkDecode[specs.Process](t, doc)
		checkDecode[map[string]string](t, doc)
		checkDecode[[]string](t, doc)
		checkDecode[record](t, doc)
		checkDecode[withAny](t, doc)
	}
	rec := []string{
		`{"id":"a","pid":3,"created":"2026-11-23T18:04:05.123456789Z","bpf":"AAEC","config":{"ociVersion":"1.2.0"},"Skip":"x","-":"y","plain":true,"private":3}`,
		`{"id":"a","created":null}`, `{"when":null}`, `{"when":"2026-11-23T18:04:05Z"}`, `{"created":"bad"}`,
		`{"bpf":"!!"}`, `{"bpf":[1,2,3]}`, `{"ints":{"a":1,"b":-2}}`, `{"ints":{"a":"x"}}`, `{"Map":{"A":"b"}}`,
	}
	for _, doc := range rec {
		checkDecode[record](t, doc)
	}
	for _, doc := range []string{`{"a":1}`, `{"a":{"b":[1,"x",null]}}`, `{"a":null}`} {
		checkDecode[withAny](t, doc)
	}
	for _, doc := range []string{`{"f":1.5}`, `{"f":1e400}`} {
		checkDecode[withFloat](t, doc)
	}
	checkDecode[withString](t, `{"n":"12"}`)
	checkDecode[withEmbedded](t, `{"X":1,"Y":2}`)
}

func TestFiles(t *testing.T) {
	for _, path := range []string{"../../spec/testdata/runc-1.1.5-spec.json", "../../seccomp/default.json"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkDecode[specs.Spec](t, string(b))
		checkDecode[specs.LinuxSeccomp](t, string(b))
	}
}

func TestEncodeLikeEncodingJSON(t *testing.T) {
	one := 1
	vals := []any{
		nil, 1, "a<b>&\u2028\x01\b\f\n\r\t\"\\ é \xff", []byte{0, 1, 2}, []byte(nil), map[string]int{"b": 1, "a": 2},
		record{ID: "x", Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Skip: "no", Dash: "yes", private: 3},
		&record{Spec: runcSpec(), Map: map[string]string{}, BPF: []byte{}},
		withAny{A: map[string]any{"x": []any{"y", true}}}, withAny{A: 1.5}, withFloat{F: 2},
		withString{N: 3}, withEmbedded{Y: 1},
		specs.Process{OOMScoreAdj: &one, Args: []string{}}, []*specs.Mount{nil},
	}
	for _, v := range vals {
		checkEncode(t, v)
	}
}

func FuzzDecode(f *testing.F) {
	for _, d := range docs {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		checkDecode[specs.Spec](t, doc)
		checkDecode[record](t, doc)
	})
}

// The point is not to fall back for the documents the runtime handles.
func TestNoFallbackForSpecs(t *testing.T) {
	for _, path := range []string{"../../spec/testdata/runc-1.1.5-spec.json", "../../seccomp/default.json"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		d := decoder{data: b}
		var s specs.Spec
		if err := d.top(reflect.ValueOf(&s).Elem()); err != nil {
			t.Errorf("%s: fell back to encoding/json", path)
		}
		e := encoder{}
		if err := e.value(reflect.ValueOf(&s)); err != nil {
			t.Errorf("%s: encoding fell back to encoding/json", path)
		}
	}
	e := encoder{}
	if err := e.value(reflect.ValueOf(&record{Created: time.Now(), Spec: runcSpec(), BPF: []byte{1}})); err != nil {
		t.Error("record: encoding fell back to encoding/json")
	}
}

func runcSpec() *specs.Spec {
	b, err := os.ReadFile("../../spec/testdata/runc-1.1.5-spec.json")
	if err != nil {
		panic(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		panic(err)
	}
	return &s
}
