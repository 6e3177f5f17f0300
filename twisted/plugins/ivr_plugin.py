from twisted.application.service import ServiceMaker

ivr = ServiceMaker("ivr", "ivr.server.tap", "The IVR call-flow webhook server.", "ivr")
