// What Linux says about a child process: CPU time (utime+stime from /proc/<pid>/stat, in clock
// ticks of 10 ms) and memory (VmRSS, and VmHWM — the peak RSS the kernel has seen — from
// /proc/<pid>/status). Reading the child from outside keeps the load generator, the Prefect
// stand-in and the emulator (all in the bench process) out of pushpool's figures.
import { readFileSync } from 'node:fs'

const TICK_MS = 10 // sysconf(_SC_CLK_TCK) is 100 on Linux/x86-64 and arm64

/** User + system CPU time of the process (all its threads), in ms. */
export function cpuMs (pid: number): number {
  const { user, system } = cpuSplitMs(pid)
  return user + system
}

/** User and system (kernel: syscalls such as socket writes and fsync) CPU time, in ms. */
export function cpuSplitMs (pid: number): { user: number, system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) may contain spaces; fields after its closing paren are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { user: Number(fields[11]) * TICK_MS, system: Number(fields[12]) * TICK_MS }
}

function statusKb (pid: number, key: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)
  if (match === null) throw new Error(`/proc/${pid}/status has no ${key}`)
  return Number(match[1])
}

export function rssMb (pid: number): number {
  return statusKb(pid, 'VmRSS') / 1024
}

/** Peak RSS since the process started (the kernel's high-water mark). */
export function peakRssMb (pid: number): number {
  return statusKb(pid, 'VmHWM') / 1024
}
