"""The engine's exceptions: one class per meaning, so an adapter can map meanings exactly.

Each is a ``RuntimeError`` (as in PyTorch) unless the meaning is an argument error. Messages follow
PyTorch's wording where that helps a reader recognise the situation; nothing depends on them.
"""

from __future__ import annotations


class AutogradError(RuntimeError):
    """Base of every error the engine raises on purpose."""


class IncompatibleShapesError(AutogradError):
    """Operands of a broadcasting op have shapes that do not broadcast."""


class InvalidExpandError(AutogradError):
    """expand / broadcast_to / sum_to_size to a shape the tensor cannot reach."""


class InplaceBroadcastError(AutogradError):
    """An in-place op would have to change the shape of self."""


class ImplicitGradError(AutogradError):
    """backward/grad without a gradient on an output with more than one element."""


class GradShapeError(AutogradError):
    """An explicit gradient whose shape is not the output's."""


class GradCountError(AutogradError):
    """A different number of gradients than outputs."""


class NoGradFnError(AutogradError):
    """backward/grad from an output that does not require grad."""


class InputNotRequiringGradError(AutogradError):
    """grad with respect to a tensor that does not require grad."""


class UnusedInputError(AutogradError):
    """grad with respect to a tensor the outputs do not depend on."""


class GraphFreedError(AutogradError):
    """A backward pass through a node whose saved tensors were freed by an earlier one."""


class ModifiedInplaceError(AutogradError):
    """A tensor saved for backward was modified in place afterwards."""


class LeafInplaceError(AutogradError):
    """An in-place op on a leaf that requires grad, with grad mode on."""


class LeafViewInplaceError(LeafInplaceError):
    """An in-place op on a view of a leaf that requires grad (a kind of ``LeafInplaceError``)."""


class NonFloatRequiresGradError(AutogradError):
    """An integer or bool tensor asked to require grad."""


class NonLeafRequiresGradError(AutogradError):
    """Turning off requires_grad on a non-leaf."""


class RetainGradError(AutogradError):
    """retain_grad() on a tensor that does not require grad."""


class EmptyInputsError(AutogradError):
    """backward(inputs=[])."""


class InvalidArgumentError(ValueError):
    """An invalid combination of arguments (materialize_grads with allow_unused=False)."""


class GradAssignError(AutogradError):
    """Assigning a .grad of the wrong shape, dtype or device."""


class GradAssignTypeError(GradAssignError, TypeError):
    """Assigning a .grad that is not a tensor (a TypeError, as in PyTorch)."""


class DeviceMismatchError(AutogradError):
    """Tensors on different devices in one op, or a gradient on another device than its output."""


class DetachViewError(AutogradError):
    """detach_() on a view."""


class NoGradViewError(AutogradError):
    """A view made under no_grad is modified in place (or its base is) with grad mode on."""


class InferenceTensorSavedError(AutogradError):
    """An inference tensor would be saved for backward by a recorded op."""


class InferenceTensorError(AutogradError):
    """An inference tensor updated in place, or asked to require grad, outside inference mode."""


class HookWithoutGradError(AutogradError):
    """A hook registered on a tensor that does not require grad."""


class NonLeafHookError(AutogradError):
    """A post-accumulate-grad hook registered on a non-leaf (it has no .grad to accumulate)."""


class HookShapeError(AutogradError):
    """A hook returned a gradient whose shape is not the one it was given."""


class OnceDifferentiableError(AutogradError):
    """A second backward through a custom Function whose backward is once-differentiable."""
