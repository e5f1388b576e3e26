package clusternodes

import (
	"fmt"
	"testing"
)

func TestCRC16(t *testing.T) {
	if got := CRC16("123456789"); got != 0x31C3 { // the XMODEM check value
		t.Errorf("CRC16(123456789) = %#x, want 0x31c3", got)
	}
	if got := TagSlot("foo"); got != 12182 { // CLUSTER KEYSLOT foo
		t.Errorf("TagSlot(foo) = %d, want 12182", got)
	}
}

func TestParse(t *testing.T) {
	nodes, err := Parse(`a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-b1]
b1 127.0.0.1:7001@17001,host.example master - 0 0 2 connected 5461-10922 16383
r1 127.0.0.1:7003@17003 slave a1 0 0 1 connected
short line
`)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(nodes)
	want := "[{a1 127.0.0.1:7000  myself,master - [[0 5460]]} {b1 127.0.0.1:7001 host.example master - [[5461 10922] [16383 16383]]} {r1 127.0.0.1:7003  slave a1 []}]"
	if got != want {
		t.Errorf("parsed\n%s\nwant\n%s", got, want)
	}
	if !nodes[0].HasFlag("myself") || nodes[1].HasFlag("myself") || !nodes[2].Replica() || nodes[0].Replica() {
		t.Error("flags misread")
	}
	if !nodes[1].Serves(16383) || nodes[1].Serves(5460) || nodes[0].Serves(5461) {
		t.Error("Serves misreads the ranges")
	}
	for _, bad := range []string{"x", "5-3", "0-16384", "-1"} {
		if _, err := Parse("a1 127.0.0.1:7000@17000 master - 0 0 1 connected " + bad); err == nil {
			t.Errorf("slot range %q accepted", bad)
		}
	}
}
