// Package wire holds the formats that both of skiff-shim's processes
// write: the monitor (package shim) and the idle monitor (package
// shim/idle), which takes over a container while nobody talks to its shim.
// They are: CRI log entries (Log, Splitter), the exit file and proto's
// exit and state messages (Exit, State), their RFC 3339 times, and Parked,
// the state one process hands the other across execve.
//
// Everything here is encoded by hand and must stay free of os, time, fmt,
// reflection and encoding/json: each of them would be mapped into every
// idle shim (see package shim's doc, "Memory"). Package shim's tests check
// the encodings against package proto and encoding/json.
package wire
