"""ATOL register protocol (протокол ККТ АТОЛ 3.x) as a sans-IO codec for both roles.

Layout, bottom up:

- ``transport``: v3 packets (STX 0xFE, 7+7-bit LEN, ID, ESC stuffing, CRC-8) and v2 frames;
- ``taskbuffer``: the task buffer (C1…C5 commands, A1…A8 statuses, B1…B4 errors) and the
  state tables of one task on the register and on the host;
- ``events`` and ``connection``: :class:`HostConnection` and :class:`DeviceConnection`, h11-style
  (``receive_data``, ``next_event``, ``send``);
- ``commands``: application requests and answers (status, shift, receipt, ФН documents, OFD,
  the check of marking codes).

Every failure is an :class:`AtolError`.
"""

from protocols.atol.commands import REQUESTS as REQUESTS
from protocols.atol.commands import AcceptMarkingCode as AcceptMarkingCode
from protocols.atol.commands import Answer as Answer
from protocols.atol.commands import BeginMarkingCheck as BeginMarkingCheck
from protocols.atol.commands import CancelReceipt as CancelReceipt
from protocols.atol.commands import CloseReceipt as CloseReceipt
from protocols.atol.commands import CloseShift as CloseShift
from protocols.atol.commands import CommandAnswer as CommandAnswer
from protocols.atol.commands import DeclineMarkingCode as DeclineMarkingCode
from protocols.atol.commands import DeviceStatus as DeviceStatus
from protocols.atol.commands import DocumentData as DocumentData
from protocols.atol.commands import DocumentInfo as DocumentInfo
from protocols.atol.commands import EnterMode as EnterMode
from protocols.atol.commands import ErrorCode as ErrorCode
from protocols.atol.commands import ExitMode as ExitMode
from protocols.atol.commands import GetDeviceStatus as GetDeviceStatus
from protocols.atol.commands import GetDocumentInfo as GetDocumentInfo
from protocols.atol.commands import GetMarkingCheckStatus as GetMarkingCheckStatus
from protocols.atol.commands import GetOfdExchangeStatus as GetOfdExchangeStatus
from protocols.atol.commands import GetShiftState as GetShiftState
from protocols.atol.commands import MarkingCheckPending as MarkingCheckPending
from protocols.atol.commands import MarkingCheckResult as MarkingCheckResult
from protocols.atol.commands import MarkingDecision as MarkingDecision
from protocols.atol.commands import Mode as Mode
from protocols.atol.commands import OfdExchangeFlags as OfdExchangeFlags
from protocols.atol.commands import OfdExchangeStatus as OfdExchangeStatus
from protocols.atol.commands import OpenReceipt as OpenReceipt
from protocols.atol.commands import OpenShift as OpenShift
from protocols.atol.commands import Payment as Payment
from protocols.atol.commands import PaymentAnswer as PaymentAnswer
from protocols.atol.commands import PaymentType as PaymentType
from protocols.atol.commands import ReadDocumentData as ReadDocumentData
from protocols.atol.commands import ReceiptType as ReceiptType
from protocols.atol.commands import RegisterItem as RegisterItem
from protocols.atol.commands import Request as Request
from protocols.atol.commands import ShiftState as ShiftState
from protocols.atol.commands import StatusFlags as StatusFlags
from protocols.atol.commands import decode_answer as decode_answer
from protocols.atol.commands import decode_request as decode_request
from protocols.atol.connection import DeviceConnection as DeviceConnection
from protocols.atol.connection import HostConnection as HostConnection
from protocols.atol.errors import AtolError as AtolError
from protocols.atol.events import NEED_DATA as NEED_DATA
from protocols.atol.events import BufferAborted as BufferAborted
from protocols.atol.events import NeedData as NeedData
from protocols.atol.events import TaskAdded as TaskAdded
from protocols.atol.events import TaskCancelled as TaskCancelled
from protocols.atol.events import TaskCompleted as TaskCompleted
from protocols.atol.events import TaskFinished as TaskFinished
from protocols.atol.events import TaskLost as TaskLost
from protocols.atol.events import TaskQueued as TaskQueued
from protocols.atol.events import TaskRefused as TaskRefused
from protocols.atol.events import TaskReleased as TaskReleased
from protocols.atol.events import TaskResumed as TaskResumed
from protocols.atol.events import TaskStarted as TaskStarted
from protocols.atol.events import TaskStopped as TaskStopped
from protocols.atol.events import TaskWaiting as TaskWaiting
from protocols.atol.taskbuffer import AbortTasks as AbortTasks
from protocols.atol.taskbuffer import AckAddTask as AckAddTask
from protocols.atol.taskbuffer import AckTask as AckTask
from protocols.atol.taskbuffer import AddTask as AddTask
from protocols.atol.taskbuffer import BufferErrorCode as BufferErrorCode
from protocols.atol.taskbuffer import ReqTask as ReqTask
from protocols.atol.taskbuffer import Status as Status
from protocols.atol.taskbuffer import TaskFlags as TaskFlags
from protocols.atol.transport import Packet as Packet
from protocols.atol.transport import decode_packet as decode_packet
from protocols.atol.transport import encode_packet as encode_packet
