from twisted.application.service import ServiceMaker

ivr = ServiceMaker("ivr", "ivr.tap", "The IVR call-flow webhook server.", "ivr")
