// NcclCommunicator: the Communicator for CUDA tensors (DESIGN.md §4), built over an MPI (or any
// CPU) bootstrap communicator that broadcasts NCCL's unique id. No CUDA header here: programs
// reach it through parallel/device_communicator.h, where the CUDA backend registers it.
//
// Note [NCCL ordering]
// Each communicator queues its NCCL calls on a stream of its own. An operation first makes that
// stream wait for the work already queued on the device's compute stream (an event), so inputs
// written by kernels are ready; Work::wait() makes the compute stream wait for the operation's
// completion event, so kernels queued afterwards see the output, without blocking the host.
// The Work keeps its tensors alive until the operation has finished (its destructor waits on the
// host if wait() was never called), so the caching allocator cannot hand their memory to another
// tensor while NCCL still reads or writes it. barrier() blocks the host.
//
// Differences from MpiCommunicator, where NCCL allows no other behaviour: f16/bf16 reductions are
// rounded at each step of NCCL's ring or tree (not once, as MPI's f32 accumulation), and send/recv
// ignore the tag (NCCL matches point-to-point calls by their order).
#pragma once
#include <memory>

#include "core/device.h"
#include "parallel/communicator.h"

namespace zt::cuda {

// Collective over `bootstrap`: every rank passes its own CUDA device.
std::shared_ptr<Communicator> make_nccl_communicator(const std::shared_ptr<Communicator>& bootstrap, Device device);

}  // namespace zt::cuda
